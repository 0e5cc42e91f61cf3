"""The application context: settings, metadata DB, blob store, vector store and embedders, opened once.

The CLI and (later) the API server build one :class:`Zhiku` and pass it to the services.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Self

from zhiku.config import Settings, get_settings
from zhiku.documents.limits import ParseLimits
from zhiku.documents.sandbox import OCR_SETTINGS, SandboxPool
from zhiku.embedding.base import Embedder
from zhiku.embedding.query_vectors import QueryVectors
from zhiku.storage.blobs import BlobStore
from zhiku.storage.db import Database
from zhiku.storage.vector_rows import VectorRowCache

if TYPE_CHECKING:
    from zhiku.storage.models import KnowledgeBase
    from zhiku.storage.vectors.base import VectorStore


class Zhiku:
    """Everything a zhiku process holds open; ``with Zhiku(settings) as zhiku:`` closes it at the end."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.settings.ensure_home()
        self.db = Database(self.settings.resolved_database_url)
        self.db.migrate()
        self.blobs = BlobStore(self.settings.home / "blobs")
        self._vectors: VectorStore | None = None
        self._lock = threading.Lock()
        self.parsers = SandboxPool(ParseLimits.from_settings(self.settings), self.settings.parse_processes)
        """Child processes that parse documents within the memory and time budget (started on first use)."""
        self.checkers = SandboxPool(self.parsers.limits, 1)
        """The child process that checks uploads (apart, so that a long parse never delays an upload)."""
        ocr_limits = replace(
            self.parsers.limits,
            memory_bytes=self.settings.ocr_memory_bytes,
            timeout_seconds=self.settings.ocr_page_timeout_seconds,
        )
        self.ocr = SandboxPool(ocr_limits, 1, OCR_SETTINGS)
        """The child process that reads scanned pages with OCR (one page at a time: its models need about 1.5 GiB)."""
        self.query_vectors = QueryVectors(self.settings.query_cache_size, self.settings.query_batch_size)
        """Query vectors of recent searches (``query_cache_size``), embedded in batches when searches arrive at
        once (``query_batch_size``)."""
        self.document_vector_cache = VectorRowCache(self.settings.document_vector_cache_mb * 1024 * 1024)
        """Document vectors read before, by knowledge base and model (``document_vector_cache_mb``)."""

    @property
    def vectors(self) -> VectorStore:
        """The vector store, opened on first use (it is owned by one process)."""
        with self._lock:
            if self._vectors is None:
                from zhiku.storage.vectors import create_vector_store

                self._vectors = create_vector_store(self.settings)
            return self._vectors

    def embedder(self, model: str) -> Embedder:
        """The shared embedder of ``model``."""
        from zhiku.embedding import get_embedder

        return get_embedder(model, self.settings)

    def embedder_for(self, kb: KnowledgeBase) -> Embedder:
        """The embedder a knowledge base was created with."""
        return self.embedder(kb.embedding_model)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the parsing processes, flush the vector store and close the database pool."""
        self.parsers.close()
        self.checkers.close()
        self.ocr.close()
        with self._lock:
            if self._vectors is not None:
                self._vectors.close()
                self._vectors = None
        self.db.dispose()
