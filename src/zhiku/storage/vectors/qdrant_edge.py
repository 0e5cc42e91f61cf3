"""The embedded vector store: one Qdrant Edge shard per collection, on disk, owned by this process.

Layout: ``<path>/<name>/`` is an Edge shard directory (``edge_config.json``, ``wal/``, ``segments/``). Each shard
has one unnamed dense vector (dot product; vectors are L2-normalised here, so scores are cosine similarities),
keyword indexes on ``kb_id`` and ``document_id``, an integer index on ``version`` and a BM25-scored text index
with the multilingual tokenizer on ``text``: CJK text is segmented into dictionary words, so Chinese queries match
Chinese text (a compound such as 大熊猫 is one token and is not matched by 熊猫 alone); English is stemmed. Only
``document_id`` gets Qdrant's per-value filter graphs (see :func:`_payload_indexes`).

Hybrid search is one shard query: a dense ``Prefetch`` and a ``TextQuery`` ``Prefetch``, both filtered, fused by
reciprocal rank fusion (``Fusion.Rrf``) inside Qdrant Edge.

Matryoshka two-stage search (``ensure_collection(..., index_dimension=k)``): the shard holds two named dense
vectors instead of the unnamed one. ``"index"`` is the first ``k`` components of the (normalised) vector,
re-normalised; it carries the HNSW graph and stays in the page cache. ``"full"`` is the whole vector, memory-mapped
without pre-warming (``Memory.Cold``) and without an HNSW graph (``m=0``): it is only read for the few candidates
being rescored. A dense query is one shard query: a ``Prefetch`` of ``max(min_rescore_candidates, rescore_factor *
top_k)`` candidates by ``Query.Nearest(prefix, using="index")``, rescored by ``Query.Nearest(full, using="full")``,
so returned scores are full-dimension cosine similarities. The layout is recorded by Qdrant Edge itself in
``edge_config.json`` (the two vector names and sizes), which is how a reopened store knows the index dimension.

Concurrency: writes (upsert, delete, optimize, index creation) and opening/closing shards are serialised by one
lock. Reads take no lock: an ``EdgeShard`` is internally synchronised (the Rust shard guards its segments with
read-write locks) and may be queried from any thread while another thread writes. Closing or dropping a
collection while a read is running makes that read fail with a store error.

Quantization (default; collections created with ``quantization=True``): the HNSW-indexed vector also has an int8
scalar-quantized copy in RAM (``quantile`` 0.99). Qdrant builds the graph and walks it on the int8 copy, then
rescores the candidates with the float32 vectors, so returned scores are exact cosine similarities. Measured on
60,000 vectors drawn like real 512-d embeddings (2 cores): the optimisation that builds the graph took 19.4 s
instead of 50.6 s; the int8 copy is a quarter of the float32 vectors' size. Segments too small to be indexed are
searched exactly either way.

Durability: every update goes through the shard's write-ahead log, so points survive a crash and are replayed on
the next open; :meth:`QdrantEdgeStore.flush` and :meth:`QdrantEdgeStore.close` also persist the segments.
Only one process may open a shard directory at a time (the WAL is locked).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    Fusion,
    HnswIndexConfig,
    IntegerIndexParams,
    KeywordIndexParams,
    MatchAny,
    MatchValue,
    Memory,
    PayloadSchemaType,
    Point,
    Prefetch,
    QuantizationSearchParams,
    Query,
    QueryRequest,
    ScalarQuantizationConfig,
    ScalarType,
    ScoredPoint,
    SearchParams,
    SnowballLanguage,
    SnowballParams,
    TextIndexParams,
    TextQuery,
    TokenizerType,
    UpdateOperation,
)

from zhiku.errors import ConflictError, InvalidInputError, NotFoundError, VectorStoreError, ZhikuError
from zhiku.storage.vectors.base import (
    DOCUMENT_FIELD,
    KB_FIELD,
    TEXT_FIELD,
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
    stored_payload,
)

logger = logging.getLogger(__name__)

_CONFIG_FILE = "edge_config.json"
_FULL_VECTOR = "full"
"""Named vector of a Matryoshka collection: the whole vector, on disk, used only for rescoring."""
_INDEX_VECTOR = "index"
"""Named vector of a Matryoshka collection: the re-normalised prefix that carries the HNSW index."""
_FLOAT32_BYTES = 4


NUMBER_MARK = "\u2115"
"""Put before a stand-alone number in the indexed text and in queries: the multilingual tokenizer drops tokens
that are digits only (a question's "2015" or "404" matched nothing), and keeps "ℕ2015" as a word."""
_NUMBER = re.compile(r"(?<![^\W_])(\d+)(?![^\W_])")
_MARKED_NUMBER = re.compile(NUMBER_MARK + r"(?=\d)")


def lexical_text(text: str) -> str:
    """``text`` as the text index sees it: each stand-alone number marked with :data:`NUMBER_MARK`."""
    return _NUMBER.sub(NUMBER_MARK + r"\1", text)


def plain_text(text: str) -> str:
    """The text of :func:`lexical_text` as it was given."""
    return _MARKED_NUMBER.sub("", text)


def _indexed_payload(point: VectorPoint) -> dict[str, Any]:
    """The stored payload with its text as the text index sees it (:func:`lexical_text`)."""
    payload = stored_payload(point)
    payload[TEXT_FIELD] = lexical_text(payload[TEXT_FIELD])
    return payload


def _text_index() -> TextIndexParams:
    """BM25 text index: multilingual segmentation (CJK words, Latin words), lower-cased, English stemming.

    Measured with TextQuery nDCG@10 (qdrant-edge-py 0.9.0): xquad-zh 0.962 with or without the stemmer,
    xquad-en 0.954 -> 0.961 with it, cmrc2018-trial 0.982 either way. Stop words did not help.
    """
    return TextIndexParams(
        tokenizer=TokenizerType.Multilingual,
        lowercase=True,
        stemmer=SnowballParams(SnowballLanguage.English),
        scoring=True,
        enable_hnsw=False,
    )


def _payload_indexes() -> dict[str, Any]:
    """The payload indexes of a shard, by field.

    ``enable_hnsw=False`` except on ``document_id``. By default an optimisation builds, for every value of an
    indexed field held by between ``full_scan_threshold`` (10 MB of vectors: 5,000 points of 512 dims) and about
    an eighth of a segment's points, an extra HNSW graph over those points so that searches filtered on that value
    stay connected. For the text index that is one graph per moderately frequent word, and dense searches are
    never filtered by a word: building 100,000 chunks' graph took 119 s with them and 49 s without (2 cores); at a
    million chunks, with hundreds of such words, more than 74 minutes without finishing. A collection holds one
    knowledge base and searches never filter on a version, so ``kb_id`` and ``version`` need none either.
    ``document_id`` keeps them: a search restricted to a large document walks its graph.
    """
    return {
        KB_FIELD: KeywordIndexParams(enable_hnsw=False),
        DOCUMENT_FIELD: PayloadSchemaType.Keyword,
        VERSION_FIELD: IntegerIndexParams(lookup=True, range=False, enable_hnsw=False),
        TEXT_FIELD: _text_index(),
    }


@dataclass
class _Collection:
    shard: EdgeShard
    dimension: int
    index_dimension: int | None = None
    """Dimension of the HNSW-indexed prefix vector of a Matryoshka collection; ``None`` for a plain one."""


@dataclass(frozen=True)
class VectorMemoryReport:
    """Vector memory of one collection: what the HNSW search needs in RAM against what stays on disk.

    The ``*_bytes`` figures are computed (points x dimension x 4 bytes of float32); ``disk_bytes`` is what the
    shard's segment files take on disk per component (``vector_storage-<name>`` and ``vector_index-<name>``,
    allocated blocks, so appendable segments' pre-allocated but unused chunks are not counted). Qdrant Edge
    0.9 reports no memory figures of its own (``EdgeShard.info()`` has point and segment counts only).
    """

    points: int
    dimension: int
    index_dimension: int | None
    """``None`` for a plain collection (the full vector is the indexed one)."""
    index_vector_bytes: int
    """The vectors the HNSW search walks: the prefix vectors, or the full vectors of a plain collection."""
    full_vector_bytes: int
    """The full vectors: on disk (``Memory.Cold``, read only to rescore) in a Matryoshka collection."""
    disk_bytes: dict[str, int]

    @property
    def plain_index_bytes(self) -> int:
        """What a plain collection of the same points would keep indexed (points x full dimension x 4)."""
        return self.points * self.dimension * _FLOAT32_BYTES

    @property
    def saved_bytes(self) -> int:
        """Indexed vector memory saved against a plain collection."""
        return self.plain_index_bytes - self.index_vector_bytes

    @property
    def ratio(self) -> float:
        """How many times smaller the indexed vectors are than in a plain collection (1.0 for a plain one)."""
        return self.dimension / (self.index_dimension or self.dimension)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, derived figures included."""
        return {
            "points": self.points,
            "dimension": self.dimension,
            "index_dimension": self.index_dimension,
            "index_vector_bytes": self.index_vector_bytes,
            "full_vector_bytes": self.full_vector_bytes,
            "plain_index_bytes": self.plain_index_bytes,
            "saved_bytes": self.saved_bytes,
            "ratio": self.ratio,
            "disk_bytes": dict(self.disk_bytes),
        }


class QdrantEdgeStore:
    """A :class:`~zhiku.storage.vectors.base.VectorStore` on Qdrant Edge shards under ``path``.

    Shards are opened lazily on first use and stay open until :meth:`close` (which flushes them). After
    ``close`` the store can still be used: shards are reopened on demand.
    """

    def __init__(
        self,
        path: Path,
        *,
        batch_size: int = 256,
        rrf_k: int = 60,
        prefetch_factor: int = 4,
        rescore_factor: int = 10,
        min_rescore_candidates: int = 100,
        indexing_threshold_kb: int | None = None,
        hnsw_ef: int | None = None,
        quantization: bool = True,
    ) -> None:
        """Open (lazily) the collections under ``path``.

        ``batch_size`` is the number of points per shard update; hybrid search fuses the best
        ``max(50, prefetch_factor * top_k)`` candidates of each side with RRF constant ``rrf_k``. Dense search
        in a Matryoshka collection rescores ``max(min_rescore_candidates, rescore_factor * top_k)`` candidates
        found on the prefix vector. ``indexing_threshold_kb`` (collections created from now on; Qdrant's
        default when ``None``) is the segment size in KB of vectors above which :meth:`optimize` builds HNSW.
        ``hnsw_ef`` is the HNSW search beam of dense searches (of stage 1 in a Matryoshka collection; Qdrant's
        default, at least the number of results asked, when ``None``). ``quantization`` gives collections created
        from now on an int8 copy of the indexed vector to build and walk the graph on (see the module docstring);
        existing collections keep the layout they were created with.
        """
        self.path = Path(path)
        self.batch_size = batch_size
        self.rrf_k = rrf_k
        self.prefetch_factor = prefetch_factor
        self.rescore_factor = rescore_factor
        self.min_rescore_candidates = min_rescore_candidates
        self.indexing_threshold_kb = indexing_threshold_kb
        self.hnsw_ef = hnsw_ef
        self.quantization = quantization
        self._lock = threading.RLock()
        self._open: dict[str, _Collection] = {}

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> QdrantEdgeStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def ensure_collection(self, name: str, dimension: int, *, index_dimension: int | None = None) -> None:
        """Create the collection if missing (idempotent); a different layout raises ``ConflictError``.

        With ``index_dimension`` (``32 <= index_dimension < dimension``) the collection is a Matryoshka one:
        the HNSW index is built on the first ``index_dimension`` components (re-normalised) and dense search
        rescores its candidates with the full vector, which stays on disk. Only meaningful for Matryoshka
        embedding models, whose prefixes are embeddings themselves. ``None`` means a plain collection, and
        re-ensuring an existing collection with another ``dimension`` or ``index_dimension`` is a conflict.
        """
        check_dimensions(dimension, index_dimension)
        folder = self._folder(name)
        with self._lock:
            existing = self._open.get(name)
            stored = (existing.dimension, existing.index_dimension) if existing else self._stored_layout(folder)
            if stored is not None and stored[0] != dimension:
                raise ConflictError(
                    f"vector collection {name!r} already exists with dimension {stored[0]}, not {dimension}: "
                    "drop it and re-index (zhiku reindex) to change the embedding model or dimension",
                    param="dimension",
                )
            if stored is not None and stored[1] != index_dimension:
                raise ConflictError(
                    f"vector collection {name!r} already exists with {_describe_index(stored[1])}, "
                    f"not {_describe_index(index_dimension)}: drop it and re-index (zhiku reindex) to change it",
                    param="index_dimension",
                )
            if existing is not None:
                return
            if stored is None:
                folder.mkdir(parents=True, exist_ok=True)
                optimizers = None
                if self.indexing_threshold_kb is not None:
                    optimizers = EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb)
                vectors = _vector_params(dimension, index_dimension, quantized=self.quantization)
                config = EdgeConfig(vectors=vectors, optimizers=optimizers)
                shard = self._call(f"create vector collection {name!r}", EdgeShard.create, str(folder), config)
                self._open[name] = _Collection(shard, dimension, index_dimension)
                self._ensure_indexes(name, shard)
            else:
                self._load(name)

    def has_collection(self, name: str) -> bool:
        """Whether the collection exists (open, or on disk)."""
        return name in self._open or self._stored_dimension(self._folder(name)) is not None

    def delete_collection(self, name: str) -> None:
        """Close and remove the collection's shard directory; a missing collection is not an error."""
        folder = self._folder(name)
        with self._lock:
            collection = self._open.pop(name, None)
            if collection is not None:
                self._call(f"close vector collection {name!r}", collection.shard.close)
            if folder.exists():
                shutil.rmtree(folder)

    def dimension(self, name: str) -> int:
        """The collection's vector dimension (``NotFoundError`` if it does not exist)."""
        return self._get(name).dimension

    def index_dimension(self, name: str) -> int | None:
        """The HNSW-indexed prefix dimension of a Matryoshka collection; ``None`` for a plain collection."""
        return self._get(name).index_dimension

    def memory_report(self, name: str) -> VectorMemoryReport:
        """Indexed against full vector bytes of the collection (see :class:`VectorMemoryReport`)."""
        collection = self._get(name)
        points = int(self._call(f"count in {name!r}", collection.shard.count, CountRequest(exact=True)))
        indexed = collection.index_dimension or collection.dimension
        return VectorMemoryReport(
            points=points,
            dimension=collection.dimension,
            index_dimension=collection.index_dimension,
            index_vector_bytes=points * indexed * _FLOAT32_BYTES,
            full_vector_bytes=points * collection.dimension * _FLOAT32_BYTES,
            disk_bytes=_segment_disk_bytes(self._folder(name)),
        )

    def flush(self) -> None:
        """Persist all pending changes of every open collection to disk."""
        with self._lock:
            for name, collection in self._open.items():
                self._call(f"flush vector collection {name!r}", collection.shard.flush)

    def optimize(self, name: str) -> None:
        """Build the HNSW index of large segments, merge small ones and vacuum deleted points (blocking).

        Qdrant Edge runs no background optimizer: call this after a large ingestion or many deletions. Reads
        keep working meanwhile; writes wait.
        """
        collection = self._get(name)
        with self._lock:
            self._upgrade_indexes(name, collection.shard)
            self._call(f"optimize vector collection {name!r}", collection.shard.optimize)

    def close(self) -> None:
        """Flush and close every open collection."""
        with self._lock:
            errors: list[str] = []
            for name, collection in list(self._open.items()):
                try:
                    self._call(f"flush vector collection {name!r}", collection.shard.flush)
                    self._call(f"close vector collection {name!r}", collection.shard.close)
                except ZhikuError as exc:
                    errors.append(exc.message)
            self._open.clear()
            if errors:
                raise VectorStoreError("; ".join(errors))

    # ------------------------------------------------------------------ writes

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        """Insert or replace ``points`` by id, ``batch_size`` at a time."""
        if not points:
            return
        collection = self._get(name)
        for start in range(0, len(points), self.batch_size):
            batch = points[start : start + self.batch_size]
            vectors = normalized_vectors([p.vector for p in batch], collection.dimension)
            stored: list[Any] = vectors.tolist()
            if collection.index_dimension is not None:
                prefixes = _prefix(vectors, collection.index_dimension).tolist()
                stored = [
                    {_FULL_VECTOR: full, _INDEX_VECTOR: prefix} for full, prefix in zip(stored, prefixes, strict=True)
                ]
            prepared = [
                Point(point_uuid(p.id), vector, _indexed_payload(p)) for p, vector in zip(batch, stored, strict=True)
            ]
            with self._lock:
                self._call(f"upsert into {name!r}", collection.shard.update, UpdateOperation.upsert_points(prepared))

    def delete(self, name: str, *, document_id: str, version: int | None = None) -> int:
        """Delete the points of ``document_id`` (only of ``version`` if given); return how many were deleted."""
        if not self.has_collection(name):
            return 0
        collection = self._get(name)
        conditions = [FieldCondition(key=DOCUMENT_FIELD, match=MatchValue(document_id))]
        if version is not None:
            conditions.append(FieldCondition(key=VERSION_FIELD, match=MatchValue(int(version))))
        selector = Filter(must=list(conditions))
        with self._lock:
            found = self._call(f"count in {name!r}", collection.shard.count, CountRequest(exact=True, filter=selector))
            if found:
                operation = UpdateOperation.delete_points_by_filter(selector)
                self._call(f"delete points in {name!r}", collection.shard.update, operation)
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
        """Nearest points to ``vector`` (cosine similarity, via dot product of normalised vectors).

        In a Matryoshka collection: candidates by the prefix vector's HNSW index, rescored by the full vector
        in the same shard query; the scores are full-dimension cosine similarities.
        """
        collection = self._get(name)
        check_top_k(top_k)
        if filter is not None and filter.matches_nothing:
            return []
        selector = _to_filter(filter)
        normalised = normalized_vectors([vector], collection.dimension)
        query_vector = normalised.tolist()[0]
        if collection.index_dimension is None:
            request = QueryRequest(
                limit=top_k,
                query=Query.Nearest(query_vector),
                filter=selector,
                params=self._search_params(),
                with_payload=with_payload,
            )
        else:
            request = QueryRequest(
                limit=top_k,
                prefetches=[self._stage_one(collection.index_dimension, normalised, top_k, selector)],
                query=Query.Nearest(query_vector, using=_FULL_VECTOR),
                filter=selector,
                with_payload=with_payload,
            )
        return self._query(name, collection, request)

    def search_text(
        self, name: str, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """BM25 over ``text`` with the multilingual tokenizer; a blank query returns no hits."""
        collection = self._get(name)
        check_top_k(top_k)
        if not query.strip() or (filter is not None and filter.matches_nothing):
            return []
        request = QueryRequest(
            limit=top_k,
            query=TextQuery(TEXT_FIELD, lexical_text(query)),
            filter=_to_filter(filter),
            with_payload=True,
        )
        return self._query(name, collection, request)

    def search_hybrid(
        self, name: str, vector: np.ndarray, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """Dense and BM25 candidates (each filtered) fused by RRF in one shard query; scores are RRF scores.

        In a Matryoshka collection the dense side is two-stage: ``max(min_rescore_candidates, rescore_factor *
        candidates)`` prefix candidates rescored by the full vector, of which the best ``candidates`` are fused.
        """
        collection = self._get(name)
        check_top_k(top_k)
        if filter is not None and filter.matches_nothing:
            return []
        normalised = normalized_vectors([vector], collection.dimension)
        query_vector = normalised.tolist()[0]
        candidates = max(50, self.prefetch_factor * top_k)
        selector = _to_filter(filter)
        if collection.index_dimension is not None:  # the dense side is itself two-stage
            dense = Prefetch(
                limit=candidates,
                prefetches=[self._stage_one(collection.index_dimension, normalised, candidates, selector)],
                query=Query.Nearest(query_vector, using=_FULL_VECTOR),
                filter=selector,
            )
        else:
            dense = Prefetch(
                limit=candidates, query=Query.Nearest(query_vector), filter=selector, params=self._search_params()
            )
        prefetches = [dense]
        if query.strip():
            prefetches.append(
                Prefetch(limit=candidates, query=TextQuery(TEXT_FIELD, lexical_text(query)), filter=selector)
            )
        request = QueryRequest(
            limit=top_k,
            prefetches=prefetches,
            query=Fusion.Rrf(k=self.rrf_k),  # type: ignore[arg-type]  # the stub's union names Fusion, not Fusion.Rrf
            filter=selector,
            with_payload=True,
        )
        return self._query(name, collection, request)

    def count(self, name: str, filter: SearchFilter | None = None) -> int:
        """Exact number of points matching ``filter``."""
        collection = self._get(name)
        if filter is not None and filter.matches_nothing:
            return 0
        request = CountRequest(exact=True, filter=_to_filter(filter))
        return int(self._call(f"count in {name!r}", collection.shard.count, request))

    def collections(self) -> Iterator[str]:
        """Names of the collections on disk."""
        if not self.path.is_dir():
            return iter(())
        return iter(sorted(p.name for p in self.path.iterdir() if (p / _CONFIG_FILE).is_file()))

    # ------------------------------------------------------------------ internals

    def _folder(self, name: str) -> Path:
        check_collection_name(name)  # also keeps the folder inside the store's path
        return self.path / name

    @classmethod
    def _stored_dimension(cls, folder: Path) -> int | None:
        """The (full) dimension recorded in the shard's ``edge_config.json``; ``None`` when there is no shard."""
        layout = cls._stored_layout(folder)
        return None if layout is None else layout[0]

    @staticmethod
    def _stored_layout(folder: Path) -> tuple[int, int | None] | None:
        """``(dimension, index_dimension)`` from the shard's ``edge_config.json``; ``None`` when there is no shard.

        A plain shard has the unnamed vector ``""``; a Matryoshka shard has ``"full"`` and ``"index"``.
        """
        config_file = folder / _CONFIG_FILE
        if not config_file.is_file():
            return None
        try:
            vectors = json.loads(config_file.read_text(encoding="utf-8"))["vectors"]
            if "" in vectors:
                return int(vectors[""]["size"]), None
            return int(vectors[_FULL_VECTOR]["size"]), int(vectors[_INDEX_VECTOR]["size"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VectorStoreError(f"unreadable vector collection config {config_file}: {exc}") from exc

    def _get(self, name: str) -> _Collection:
        collection = self._open.get(name)
        if collection is not None:
            return collection
        folder = self._folder(name)
        with self._lock:
            collection = self._open.get(name)
            if collection is not None:
                return collection
            if self._stored_dimension(folder) is None:
                raise NotFoundError(f"vector collection {name!r} does not exist", param="name")
            return self._load(name)

    def _load(self, name: str) -> _Collection:
        """Open an existing shard (caller holds the lock)."""
        folder = self._folder(name)
        layout = self._stored_layout(folder)
        if layout is None:
            raise NotFoundError(f"vector collection {name!r} does not exist", param="name")
        shard = self._call(f"open vector collection {name!r}", EdgeShard.load, str(folder))
        collection = _Collection(shard, *layout)
        self._open[name] = collection
        self._ensure_indexes(name, shard)
        return collection

    def _ensure_indexes(self, name: str, shard: EdgeShard) -> None:
        """Create the payload indexes a shard lacks (caller holds the lock)."""
        schema = self._call(f"inspect vector collection {name!r}", shard.info).payload_schema
        for field_name, params in _payload_indexes().items():
            if field_name not in schema:
                operation = UpdateOperation.create_field_index(field_name, params)
                self._call(f"index {field_name!r} in {name!r}", shard.update, operation)
        text_params = schema.get(TEXT_FIELD)
        tokenizer = getattr(getattr(text_params, "params", None), "tokenizer", TokenizerType.Multilingual)
        if text_params is not None and tokenizer != TokenizerType.Multilingual:
            logger.warning("vector collection %r has a %s text index, not Multilingual: re-index it", name, tokenizer)

    def _upgrade_indexes(self, name: str, shard: EdgeShard) -> None:
        """Re-create payload indexes made before ``enable_hnsw=False`` (caller holds the lock).

        Done before an optimisation, the step that would build their per-value graphs: re-creating the text
        index re-tokenises every chunk (minutes at a million chunks), which should not delay opening a store.
        Creating an index over an existing one replaces it, so searches never see the field unindexed.
        """
        schema = self._call(f"inspect vector collection {name!r}", shard.info).payload_schema
        for field_name, params in _payload_indexes().items():
            existing = schema.get(field_name)
            if existing is None or getattr(params, "enable_hnsw", None) is not False:
                continue
            if getattr(existing.params, "enable_hnsw", None) is not False:
                logger.info("re-creating the %r index of collection %r without per-value graphs", field_name, name)
                operation = UpdateOperation.create_field_index(field_name, params)
                self._call(f"re-index {field_name!r} in {name!r}", shard.update, operation)

    def _stage_one(self, index_dimension: int, query: np.ndarray, wanted: int, selector: Filter | None) -> Prefetch:
        """Stage 1 of a Matryoshka search: HNSW candidates for the re-normalised prefix of ``query`` (1 x dim).

        ``max(min_rescore_candidates, rescore_factor * wanted)`` candidates, for the full vector to rescore.
        """
        prefix = _prefix(query, index_dimension).tolist()[0]
        limit = max(self.min_rescore_candidates, self.rescore_factor * wanted, wanted)
        return Prefetch(
            limit=limit,
            query=Query.Nearest(prefix, using=_INDEX_VECTOR),
            filter=selector,
            params=self._search_params(),
        )

    def _search_params(self) -> SearchParams:
        # rescoring with the float32 vectors is Qdrant's default; asked for explicitly as the scores depend on it
        return SearchParams(hnsw_ef=self.hnsw_ef, quantization=QuantizationSearchParams(rescore=True))

    def _query(self, name: str, collection: _Collection, request: QueryRequest) -> list[VectorHit]:
        points: list[ScoredPoint] = self._call(f"search {name!r}", collection.shard.query, request)
        hits = [VectorHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]
        for hit in hits:
            if isinstance(hit.payload.get(TEXT_FIELD), str):
                hit.payload[TEXT_FIELD] = plain_text(hit.payload[TEXT_FIELD])
        return hits

    @staticmethod
    def _call(what: str, function: Any, *args: Any) -> Any:
        """Run a Qdrant Edge call, turning its bare exceptions into zhiku errors that say what failed."""
        try:
            return function(*args)
        except Exception as exc:
            message = str(exc)
            if "WouldBlock" in message:  # the shard's WAL is locked by another open shard
                raise ConflictError(
                    f"cannot {what}: it is open in another process or store instance ({message})"
                ) from exc
            raise VectorStoreError(f"cannot {what}: {message}") from exc


def _vector_params(
    dimension: int, index_dimension: int | None, *, quantized: bool
) -> EdgeVectorParams | dict[str, EdgeVectorParams]:
    """The unnamed dense vector, or the ``full`` + ``index`` pair of a Matryoshka collection; with ``quantized``
    the HNSW-indexed one gets an int8 copy in RAM."""
    int8 = ScalarQuantizationConfig(ScalarType.Int8, quantile=0.99, memory=Memory.Pinned) if quantized else None
    if index_dimension is None:
        return EdgeVectorParams(size=dimension, distance=Distance.Dot, quantization_config=int8)
    # m=0: no HNSW graph for the full vector (it is only rescored); Cold: memory-mapped, not pre-warmed
    no_graph = HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)
    return {
        _FULL_VECTOR: EdgeVectorParams(size=dimension, distance=Distance.Dot, memory=Memory.Cold, hnsw_config=no_graph),
        _INDEX_VECTOR: EdgeVectorParams(size=index_dimension, distance=Distance.Dot, quantization_config=int8),
    }


def _prefix(vectors: np.ndarray, index_dimension: int) -> np.ndarray:
    """The first ``index_dimension`` components of each row, L2-normalised again (zero prefixes stay zero)."""
    prefix = vectors[:, :index_dimension]
    norms = np.linalg.norm(prefix, axis=1, keepdims=True)
    return np.asarray(prefix / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _describe_index(index_dimension: int | None) -> str:
    return "no reduced index dimension" if index_dimension is None else f"index dimension {index_dimension}"


def _segment_disk_bytes(folder: Path) -> dict[str, int]:
    """Allocated bytes of the vector storages and vector indexes over all segments, by component directory.

    Keys are ``vector_storage-<vector>`` / ``vector_index-<vector>`` (``vector_storage`` / ``vector_index`` for
    the unnamed vector of a plain collection). Allocated blocks, not apparent sizes: sparse pre-allocated chunks
    of appendable segments count for what they hold.
    """
    totals: dict[str, int] = {}
    segments = folder / "segments"
    if not segments.is_dir():
        return totals
    for segment in segments.iterdir():
        if not segment.is_dir():
            continue
        for component in segment.iterdir():
            if not component.is_dir() or not component.name.startswith(("vector_storage", "vector_index")):
                continue
            size = 0
            for file in component.rglob("*"):
                try:
                    stat = file.stat()
                except OSError:  # a segment being optimised away
                    continue
                if file.is_file():
                    blocks = getattr(stat, "st_blocks", None)
                    size += stat.st_size if blocks is None else min(stat.st_size, blocks * 512)
            totals[component.name] = totals.get(component.name, 0) + size
    return dict(sorted(totals.items()))


def _match(value: PayloadValue | Sequence[PayloadValue]) -> MatchValue | MatchAny:
    if isinstance(value, str | int | bool):
        return MatchValue(value)
    values = list(value)
    if all(isinstance(v, str) for v in values):
        return MatchAny([str(v) for v in values])
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return MatchAny([int(v) for v in values])
    raise InvalidInputError(f"filter values must be all strings or all integers, got {values!r}", param="filter")


def _to_filter(search_filter: SearchFilter | None) -> Filter | None:
    if search_filter is None:
        return None
    conditions: list[Any] = []
    if search_filter.kb_id is not None:
        conditions.append(FieldCondition(key=KB_FIELD, match=MatchValue(search_filter.kb_id)))
    if search_filter.document_ids is not None:
        ids = [str(d) for d in search_filter.document_ids]
        conditions.append(FieldCondition(key=DOCUMENT_FIELD, match=MatchAny(ids)))
    for key, value in (search_filter.payload or {}).items():
        conditions.append(FieldCondition(key=key, match=_match(value)))
    return Filter(must=conditions) if conditions else None
