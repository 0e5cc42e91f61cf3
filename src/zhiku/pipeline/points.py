"""Vector points of chunks: their ids and payloads, built here alone (for ingestion and for the re-index)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from zhiku.documents.types import indexed_text
from zhiku.storage.vectors.base import VectorPoint

CHUNK_NAMESPACE = uuid.UUID("5b0e6f1c-64e5-4b8a-9a3e-6f0d2f1c7a10")


class ChunkLike(Protocol):
    """What a point is built from: a chunk span being ingested, or a chunk row being re-indexed."""

    @property
    def ordinal(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def context(self) -> str: ...

    @property
    def page_start(self) -> int: ...

    @property
    def page_end(self) -> int: ...


def chunk_id(document_id: str, version: int, ordinal: int) -> str:
    """Deterministic chunk (and vector point) id, so that retries overwrite instead of duplicating."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{document_id}:{version}:{ordinal}"))


def embedded_text(chunk: ChunkLike) -> str:
    """What is embedded and lexically indexed for a chunk: its context (a table's header), a newline, its text."""
    return indexed_text(chunk.context, chunk.text)


def chunk_points(
    kb_id: str, document_id: str, version: int, chunks: Sequence[ChunkLike], vectors: np.ndarray
) -> list[VectorPoint]:
    """The vector points of one document version's ``chunks`` (one vector each, in order).

    A point's text, which the stores index for BM25, is the chunk's text after its context (a table's header), as
    embedded: :func:`embedded_text`."""
    return [
        VectorPoint(
            id=chunk_id(document_id, version, chunk.ordinal),
            vector=vector,
            text=embedded_text(chunk),
            payload={
                "kb_id": kb_id,
                "document_id": document_id,
                "version": version,
                "ordinal": chunk.ordinal,
                "page_start": chunk.page_start,
                "page_end": chunk.page_end,
            },
        )
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
