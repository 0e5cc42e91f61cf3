"""The Qdrant server adapter (scale-out), via ``qdrant-client``: the same :class:`VectorStore` contract as the
embedded Qdrant Edge store.

One Qdrant collection per zhiku collection, with a cosine dense vector (``dense``; a Matryoshka collection
adds the HNSW-indexed prefix ``index`` and keeps ``dense`` un-indexed for rescoring) and a sparse BM25 vector
(``bm25``, IDF applied by Qdrant; terms from :mod:`zhiku.storage.vectors.bm25`). Payload indexes on ``kb_id``,
``document_id`` and ``version``. ``QdrantStore(url=...)`` talks to a server or cluster;
``QdrantStore(path=...)`` runs qdrant-client's local mode (tests; no server binary can be installed here).
Collection settings (shards, replication, on-disk vectors) come from ``qdrant_shards`` / ``qdrant_replicas``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from zhiku.errors import ConflictError, InvalidInputError, NotFoundError, VectorStoreError
from zhiku.storage.vectors.base import (
    DOCUMENT_FIELD,
    KB_FIELD,
    VERSION_FIELD,
    PayloadValue,
    SearchFilter,
    VectorHit,
    VectorPoint,
    check_collection_name,
    check_dimensions,
    check_top_k,
    normalized_vectors,
    point_uuid,
    prefix_vector,
    stored_payload,
)
from zhiku.storage.vectors.bm25 import document_vector, query_vector

DENSE = "dense"
INDEX = "index"
SPARSE = "bm25"


class QdrantStore:
    """Vector store on a Qdrant server (``url``) or in qdrant-client's local mode (``path``)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        path: Path | None = None,
        api_key: str | None = None,
        shards: int = 1,
        replicas: int = 1,
        batch_size: int = 256,
        rrf_k: int = 60,
        rescore_factor: int = 4,
        quantization: bool = True,
        hnsw_ef: int | None = None,
    ) -> None:
        """Connect to ``url`` (or open local mode at ``path``). ``quantization`` gives new collections an int8
        scalar-quantized copy of the HNSW-indexed vector in RAM (hits rescored with the float32 vectors).
        ``hnsw_ef`` is the HNSW search beam of dense searches (the server's default when ``None``)."""
        if (url is None) == (path is None):
            raise ValueError("QdrantStore needs exactly one of url= or path=")
        self.client = QdrantClient(url=url, api_key=api_key) if url else QdrantClient(path=str(path))
        self.shards, self.replicas = shards, replicas
        self.batch_size, self.rrf_k, self.rescore_factor = batch_size, rrf_k, rescore_factor
        self.quantization = quantization
        self.search_params = models.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef is not None else None
        self._layouts: dict[str, tuple[int, int | None]] = {}
        self._lock = threading.RLock()  # local mode is not thread-safe; a server client is, but cheap to keep

    # ------------------------------------------------------------------ collections

    def ensure_collection(self, name: str, dimension: int, *, index_dimension: int | None = None) -> None:
        """Create the collection if missing; ``ConflictError`` if it exists with another layout."""
        check_collection_name(name)
        check_dimensions(dimension, index_dimension)
        with self._lock:
            stored = self._layout(name, missing_ok=True)
            if stored is not None:
                if stored[0] != dimension:
                    raise ConflictError(
                        f"vector collection {name!r} already exists with dimension {stored[0]}, not {dimension}: "
                        "drop it and re-index (zhiku reindex) to change the embedding model or dimension",
                        param="dimension",
                    )
                if stored[1] != index_dimension:
                    raise ConflictError(
                        f"vector collection {name!r} already exists with another index dimension",
                        param="index_dimension",
                    )
                return
            int8 = (
                models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
                )
                if self.quantization
                else None
            )
            vectors: dict[str, models.VectorParams] = {
                DENSE: models.VectorParams(
                    size=dimension,
                    distance=models.Distance.COSINE,
                    hnsw_config=models.HnswConfigDiff(m=0) if index_dimension else None,
                    quantization_config=None if index_dimension else int8,
                ),
            }
            if index_dimension is not None:
                vectors[INDEX] = models.VectorParams(
                    size=index_dimension, distance=models.Distance.COSINE, quantization_config=int8
                )
            sparse = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
            self._call(
                f"create vector collection {name!r}",
                self.client.create_collection,
                name,
                vectors_config=vectors,
                shard_number=self.shards,
                replication_factor=self.replicas,
                sparse_vectors_config=sparse,
            )
            with warnings.catch_warnings():  # local mode warns that it ignores payload indexes
                warnings.simplefilter("ignore", UserWarning)
                for field, schema in (
                    (KB_FIELD, models.PayloadSchemaType.KEYWORD),
                    (DOCUMENT_FIELD, models.PayloadSchemaType.KEYWORD),
                    (VERSION_FIELD, models.PayloadSchemaType.INTEGER),
                ):
                    self._call(f"index {field!r} in {name!r}", self.client.create_payload_index, name, field, schema)
            self._layouts[name] = (dimension, index_dimension)

    def has_collection(self, name: str) -> bool:
        """Whether the collection exists."""
        check_collection_name(name)
        with self._lock:
            return bool(self._call(f"look up {name!r}", self.client.collection_exists, name))

    def delete_collection(self, name: str) -> None:
        """Drop the collection; a missing one is not an error."""
        with self._lock:
            self._layouts.pop(name, None)
            if self.has_collection(name):
                self._call(f"delete vector collection {name!r}", self.client.delete_collection, name)

    def collections(self) -> Iterator[str]:
        """Names of the collections."""
        with self._lock:
            found = self._call("list collections", self.client.get_collections).collections
        return iter(sorted(c.name for c in found))

    def dimension(self, name: str) -> int:
        """The collection's vector dimension (``NotFoundError`` if it does not exist)."""
        return self._layout(name)[0]  # type: ignore[index]

    def index_dimension(self, name: str) -> int | None:
        """The indexed prefix dimension of a Matryoshka collection; ``None`` for a plain one."""
        return self._layout(name)[1]  # type: ignore[index]

    # ------------------------------------------------------------------ writes

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points by id, ``batch_size`` at a time."""
        if not points:
            return
        dimension, index_dimension = self._layout(name)  # type: ignore[misc]
        for start in range(0, len(points), self.batch_size):
            batch = points[start : start + self.batch_size]
            vectors = normalized_vectors([p.vector for p in batch], dimension)
            structs = []
            for point, vector in zip(batch, vectors, strict=True):
                indices, values = document_vector(point.text)
                named: dict[str, Any] = {
                    DENSE: vector.tolist(),
                    SPARSE: models.SparseVector(indices=indices, values=values),
                }
                if index_dimension is not None:
                    named[INDEX] = prefix_vector(vector, index_dimension).tolist()
                structs.append(models.PointStruct(id=point_uuid(point.id), vector=named, payload=stored_payload(point)))
            with self._lock:
                self._call(f"upsert into {name!r}", self.client.upsert, name, structs, wait=True)

    def delete(self, name: str, *, document_id: str, version: int | None = None) -> int:
        """Delete a document's points (only of ``version`` if given); return how many were deleted."""
        if not self.has_collection(name):
            return 0
        conditions = [models.FieldCondition(key=DOCUMENT_FIELD, match=models.MatchValue(value=document_id))]
        if version is not None:
            conditions.append(models.FieldCondition(key=VERSION_FIELD, match=models.MatchValue(value=int(version))))
        selector = models.Filter(must=list(conditions))
        with self._lock:
            found = self._call(f"count in {name!r}", self.client.count, name, count_filter=selector, exact=True).count
            if found:
                self._call(
                    f"delete points in {name!r}",
                    self.client.delete,
                    name,
                    points_selector=models.FilterSelector(filter=selector),
                    wait=True,
                )
        return int(found)

    # ------------------------------------------------------------------ reads

    def search_dense(
        self,
        name: str,
        vector: np.ndarray,
        *,
        top_k: int = 10,
        filter: SearchFilter | None = None,
        with_payload: bool = True,
    ) -> list[VectorHit]:
        """Nearest points by cosine similarity (Matryoshka: prefix candidates rescored by the full vector)."""
        dimension, index_dimension = self._layout(name)  # type: ignore[misc]
        check_top_k(top_k)
        if filter is not None and filter.matches_nothing:
            return []
        query = normalized_vectors([vector], dimension)[0]
        selector = _to_filter(filter)
        if index_dimension is None:
            return self._query(
                name,
                query=query.tolist(),
                using=DENSE,
                limit=top_k,
                query_filter=selector,
                search_params=self.search_params,
                with_payload=with_payload,
            )
        stage_one = models.Prefetch(
            query=prefix_vector(query, index_dimension).tolist(),
            using=INDEX,
            filter=selector,
            limit=max(top_k, self.rescore_factor * top_k, 100),
            params=self.search_params,
        )
        return self._query(
            name,
            prefetch=[stage_one],
            query=query.tolist(),
            using=DENSE,
            limit=top_k,
            query_filter=selector,
            with_payload=with_payload,
        )

    def search_text(
        self, name: str, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """BM25 over the chunk text; a query without terms returns no hits."""
        self._layout(name)
        check_top_k(top_k)
        indices, values = query_vector(query)
        if not indices or (filter is not None and filter.matches_nothing):
            return []
        sparse = models.SparseVector(indices=indices, values=values)
        return self._query(name, query=sparse, using=SPARSE, limit=top_k, query_filter=_to_filter(filter))

    def search_hybrid(
        self, name: str, vector: np.ndarray, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """Dense and BM25 candidates fused by Qdrant (reciprocal rank fusion); scores are fusion scores."""
        dimension, index_dimension = self._layout(name)  # type: ignore[misc]
        check_top_k(top_k)
        if filter is not None and filter.matches_nothing:
            return []
        selector = _to_filter(filter)
        dense_query = normalized_vectors([vector], dimension)[0]
        candidates = max(50, 4 * top_k)
        if index_dimension is None:
            dense = models.Prefetch(
                query=dense_query.tolist(), using=DENSE, filter=selector, limit=candidates, params=self.search_params
            )
        else:
            dense = models.Prefetch(
                prefetch=[
                    models.Prefetch(
                        query=prefix_vector(dense_query, index_dimension).tolist(),
                        using=INDEX,
                        filter=selector,
                        limit=self.rescore_factor * candidates,
                        params=self.search_params,
                    )
                ],
                query=dense_query.tolist(),
                using=DENSE,
                filter=selector,
                limit=candidates,
            )
        prefetches = [dense]
        indices, values = query_vector(query)
        if indices:
            prefetches.append(
                models.Prefetch(
                    query=models.SparseVector(indices=indices, values=values),
                    using=SPARSE,
                    filter=selector,
                    limit=candidates,
                )
            )
        fusion = models.RrfQuery(rrf=models.Rrf(k=self.rrf_k))
        return self._query(name, prefetch=prefetches, query=fusion, limit=top_k, query_filter=selector)

    def count(self, name: str, filter: SearchFilter | None = None) -> int:
        """Exact number of points matching ``filter``."""
        self._layout(name)
        if filter is not None and filter.matches_nothing:
            return 0
        with self._lock:
            result = self._call(
                f"count in {name!r}", self.client.count, name, count_filter=_to_filter(filter), exact=True
            )
        return int(result.count)

    def optimize(self, name: str) -> None:
        """A no-op: the Qdrant server optimises segments in the background."""
        self._layout(name)

    def close(self) -> None:
        """Close the client (local mode: flush to disk)."""
        with self._lock:
            self.client.close()

    # ------------------------------------------------------------------ internals

    def _layout(self, name: str, *, missing_ok: bool = False) -> tuple[int, int | None] | None:
        """``(dimension, index_dimension)`` of a collection, read from Qdrant once and remembered."""
        check_collection_name(name)
        with self._lock:
            if name in self._layouts:
                return self._layouts[name]
            if not self._call(f"look up {name!r}", self.client.collection_exists, name):
                if missing_ok:
                    return None
                raise NotFoundError(f"vector collection {name!r} does not exist", param="name")
            vectors = self._call(f"inspect {name!r}", self.client.get_collection, name).config.params.vectors
            dense = vectors[DENSE]
            index = vectors.get(INDEX)
            layout = (int(dense.size), int(index.size) if index is not None else None)
            self._layouts[name] = layout
            return layout

    def _query(self, name: str, *, with_payload: bool = True, **request: Any) -> list[VectorHit]:
        with self._lock:
            result = self._call(
                f"search {name!r}", self.client.query_points, name, with_payload=with_payload, **request
            )
        return [VectorHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in result.points]

    @staticmethod
    def _call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (InvalidInputError, NotFoundError, ConflictError):
            raise
        except Exception as exc:
            raise VectorStoreError(f"cannot {what}: {exc}") from exc


def _check_name(name: str) -> None:
    import re

    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", name) or ".." in name:
        raise InvalidInputError(
            f"invalid vector collection name {name!r}: use 1-128 letters, digits, '_', '-' or '.'", param="name"
        )


def _match(value: PayloadValue | Sequence[PayloadValue]) -> models.MatchValue | models.MatchAny:
    if isinstance(value, str | int | bool):
        return models.MatchValue(value=value)
    values = list(value)
    if all(isinstance(v, str) for v in values) or all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return models.MatchAny(any=values)  # type: ignore[arg-type]
    raise InvalidInputError(f"filter values must be all strings or all integers, got {values!r}", param="filter")


def _to_filter(search_filter: SearchFilter | None) -> models.Filter | None:
    if search_filter is None:
        return None
    conditions: list[Any] = []
    if search_filter.kb_id is not None:
        conditions.append(models.FieldCondition(key=KB_FIELD, match=models.MatchValue(value=search_filter.kb_id)))
    if search_filter.document_ids is not None:
        ids = [str(d) for d in search_filter.document_ids]
        conditions.append(models.FieldCondition(key=DOCUMENT_FIELD, match=models.MatchAny(any=ids)))
    for key, value in (search_filter.payload or {}).items():
        conditions.append(models.FieldCondition(key=key, match=_match(value)))
    return models.Filter(must=conditions) if conditions else None
