"""Vector stores: the :class:`VectorStore` protocol and the factory that picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zhiku.storage.vectors.base import SearchFilter, VectorHit, VectorPoint, VectorStore

if TYPE_CHECKING:
    from zhiku.config import Settings

__all__ = ["SearchFilter", "VectorHit", "VectorPoint", "VectorStore", "create_vector_store"]


def create_vector_store(settings: Settings) -> VectorStore:
    """The embedded Qdrant Edge store under ``<home>/vectors`` (one process owns it)."""
    from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

    return QdrantEdgeStore(settings.home / "vectors")
