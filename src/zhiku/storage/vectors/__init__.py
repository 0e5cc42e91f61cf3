"""Vector stores: the :class:`VectorStore` protocol and the factory that picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zhiku.storage.vectors.base import SearchFilter, VectorHit, VectorPoint, VectorStore

if TYPE_CHECKING:
    from zhiku.config import Settings

__all__ = ["SearchFilter", "VectorHit", "VectorPoint", "VectorStore", "create_vector_store"]


def create_vector_store(settings: Settings) -> VectorStore:
    """The store the settings name: embedded Qdrant Edge under ``<home>/vectors`` (default; asked of the store
    process of ``zhiku serve --workers N`` when ``edge_store_socket`` is set), a Qdrant server, or PostgreSQL with
    pgvector."""
    if settings.vector_store == "pgvector":
        from zhiku.errors import ConfigError
        from zhiku.storage.vectors.pgvector import PgVectorStore

        url = settings.pgvector_url or settings.database_url
        if not url or not url.startswith("postgres"):
            raise ConfigError(
                "vector_store = 'pgvector' needs a PostgreSQL database: set ZHIKU_PGVECTOR_URL, or ZHIKU_DATABASE_URL "
                "to keep the vectors beside the metadata (e.g. postgresql+psycopg://user:pass@host:5432/zhiku)"
            )
        return PgVectorStore(url, hnsw_ef=settings.vector_search_ef or None)
    if settings.vector_store == "qdrant":
        from zhiku.errors import ConfigError
        from zhiku.storage.vectors.qdrant import QdrantStore

        if not settings.qdrant_url:
            raise ConfigError("vector_store = 'qdrant' needs qdrant_url (ZHIKU_QDRANT_URL)")
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantStore(
            url=settings.qdrant_url,
            api_key=key,
            shards=settings.qdrant_shards,
            replicas=settings.qdrant_replicas,
            hnsw_ef=settings.vector_search_ef or None,
            quantization=settings.vector_quantization == "int8",
        )
    if settings.edge_store_socket is not None:  # zhiku serve --workers N: the store process owns the shards
        from zhiku.storage.vectors.edge_process import EdgeStoreClient

        return EdgeStoreClient(settings.edge_store_socket)
    from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

    return QdrantEdgeStore(
        settings.home / "vectors",
        hnsw_ef=settings.vector_search_ef or None,
        quantization=settings.vector_quantization == "int8",
    )
