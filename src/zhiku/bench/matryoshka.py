"""Matryoshka two-stage search: nDCG@10 lost against index memory saved, on given corpus and query vectors.

Three rankings of the same vectors are scored with nDCG@10 against the relevance judgements:

* ``full``: exact dot product at the full dimension (numpy brute force), the reference;
* ``index``: exact dot product on the re-normalised ``index_dimension`` prefixes only (what the reduced index
  alone would give with no rescoring, without HNSW approximation);
* ``two_stage``: the real store, a :class:`~zhiku.storage.vectors.qdrant_edge.QdrantEdgeStore` collection created
  with ``index_dimension`` (HNSW on the prefix, candidates rescored with the full vector).

The memory figures are the store's :meth:`~zhiku.storage.vectors.qdrant_edge.QdrantEdgeStore.memory_report`.
Quality numbers only mean something for a Matryoshka-trained model (its prefixes are embeddings themselves);
on a non-Matryoshka model, or random vectors, they only exercise the mechanics.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zhiku.errors import InvalidInputError
from zhiku.eval.retrieval import rank_metrics
from zhiku.storage.vectors.base import VectorPoint
from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

_COLLECTION = "matryoshka"
_PLAIN_COLLECTION = "plain"


@dataclass(frozen=True)
class MatryoshkaResult:
    """nDCG@10 of full, prefix-only and two-stage retrieval, the index memory and the search latency."""

    points: int
    queries: int
    dimension: int
    index_dimension: int
    candidates: int
    """Stage-1 candidates rescored per query (for top 10)."""
    ndcg_full: float
    ndcg_index: float
    ndcg_two_stage: float
    overlap_at_10: float
    """Mean share of the exact full-dimension top 10 that two-stage search returns."""
    index_vector_bytes: int
    full_vector_bytes: int
    memory_ratio: float
    """How many times smaller the indexed vectors are than full-dimension ones."""
    two_stage_ms: float
    """Median latency of one two-stage store query, in milliseconds."""
    plain_ms: float | None = None
    """Median latency of the same query on a plain full-dimension collection (when measured)."""
    disk_bytes: dict[str, int] | None = None

    @property
    def ndcg_points_lost(self) -> float:
        """nDCG@10 points (x100) lost by two-stage search against exact full-dimension search."""
        return 100 * (self.ndcg_full - self.ndcg_two_stage)

    @property
    def index_bytes_saved(self) -> int:
        """Indexed vector bytes saved against indexing the full vectors."""
        return self.full_vector_bytes - self.index_vector_bytes

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, derived figures included."""
        return {**asdict(self), "ndcg_points_lost": self.ndcg_points_lost, "index_bytes_saved": self.index_bytes_saved}


def prefix_vectors(vectors: np.ndarray, index_dimension: int) -> np.ndarray:
    """The first ``index_dimension`` components of each (row) vector, L2-normalised (zero rows stay zero)."""
    prefix = np.asarray(vectors, dtype=np.float32)[:, :index_dimension]
    norms = np.linalg.norm(prefix, axis=1, keepdims=True)
    return np.asarray(prefix / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _top_ids(scores: np.ndarray, doc_ids: Sequence[str], k: int) -> list[list[str]]:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[doc_ids[j] for j in row] for row in top]


def _mean_ndcg(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]]) -> float:
    return float(np.mean([rank_metrics(list(r), dict(rel))[0] for r, rel in zip(rankings, qrels, strict=True)]))


def _points(vectors: np.ndarray, doc_ids: Sequence[str]) -> list[VectorPoint]:
    return [
        VectorPoint(id=str(uuid.UUID(int=i)), vector=vector, text="", payload={"document_id": doc_id, "version": 1})
        for i, (vector, doc_id) in enumerate(zip(vectors, doc_ids, strict=True))
    ]


def measure(
    corpus: np.ndarray,
    queries: np.ndarray,
    qrels: Sequence[Mapping[str, int]],
    index_dimension: int,
    *,
    doc_ids: Sequence[str] | None = None,
    rescore_factor: int = 10,
    min_rescore_candidates: int = 100,
    compare_plain: bool = False,
    hnsw_ef: int | None = None,
    path: Path | None = None,
) -> MatryoshkaResult:
    """Score full, prefix-only and two-stage retrieval of ``queries`` over ``corpus``.

    ``corpus`` is (n, dim) and ``queries`` (q, dim), full-dimension vectors of a Matryoshka model (normalised
    here); ``qrels[i]`` maps the relevant document ids of query ``i`` to their grades; ``doc_ids`` names the
    corpus rows (``"0"``, ``"1"``, ... by default). The store is built in ``path`` (a temporary directory when
    ``None``) and optimised (HNSW built) before timing; ``compare_plain`` also times a plain full-dimension
    collection for reference. ``hnsw_ef`` is the stores' HNSW search beam (Qdrant's default when ``None``).
    """
    corpus = np.asarray(corpus, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    if corpus.ndim != 2 or queries.ndim != 2 or corpus.shape[1] != queries.shape[1]:
        raise InvalidInputError(f"corpus {corpus.shape} and queries {queries.shape} must be 2-D of one dimension")
    if len(qrels) != len(queries):
        raise InvalidInputError(f"{len(qrels)} qrels for {len(queries)} queries")
    ids = [str(i) for i in range(len(corpus))] if doc_ids is None else [str(d) for d in doc_ids]
    if len(ids) != len(corpus):
        raise InvalidInputError(f"{len(ids)} doc ids for {len(corpus)} corpus vectors")
    dimension = corpus.shape[1]
    k = 10

    full_docs, full_queries = _normalise(corpus), _normalise(queries)
    exact = _top_ids(full_queries @ full_docs.T, ids, k)
    prefix_only = _top_ids(
        prefix_vectors(full_queries, index_dimension) @ prefix_vectors(full_docs, index_dimension).T, ids, k
    )

    with tempfile.TemporaryDirectory(prefix="zhiku-matryoshka-") as scratch:
        store = QdrantEdgeStore(
            Path(path) if path is not None else Path(scratch),
            rescore_factor=rescore_factor,
            min_rescore_candidates=min_rescore_candidates,
            hnsw_ef=hnsw_ef,
        )
        try:
            store.ensure_collection(_COLLECTION, dimension, index_dimension=index_dimension)
            store.upsert(_COLLECTION, _points(full_docs, ids))
            store.optimize(_COLLECTION)
            report = store.memory_report(_COLLECTION)
            two_stage, timings = _run(store, _COLLECTION, full_queries, k)
            plain_ms = None
            if compare_plain:
                store.ensure_collection(_PLAIN_COLLECTION, dimension)
                store.upsert(_PLAIN_COLLECTION, _points(full_docs, ids))
                store.optimize(_PLAIN_COLLECTION)
                plain_ms = statistics.median(_run(store, _PLAIN_COLLECTION, full_queries, k)[1])
        finally:
            store.close()

    overlap = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, two_stage, strict=True)]))
    return MatryoshkaResult(
        points=len(corpus),
        queries=len(queries),
        dimension=dimension,
        index_dimension=index_dimension,
        candidates=max(min_rescore_candidates, rescore_factor * k),
        ndcg_full=_mean_ndcg(exact, qrels),
        ndcg_index=_mean_ndcg(prefix_only, qrels),
        ndcg_two_stage=_mean_ndcg(two_stage, qrels),
        overlap_at_10=overlap,
        index_vector_bytes=report.index_vector_bytes,
        full_vector_bytes=report.full_vector_bytes,
        memory_ratio=report.ratio,
        two_stage_ms=statistics.median(timings),
        plain_ms=plain_ms,
        disk_bytes=report.disk_bytes,
    )


def _run(store: QdrantEdgeStore, name: str, queries: np.ndarray, k: int) -> tuple[list[list[str]], list[float]]:
    """Top-``k`` document ids of every query from the store, and each query's latency in milliseconds."""
    rankings: list[list[str]] = []
    timings: list[float] = []
    store.search_dense(name, queries[0], top_k=k)  # warm-up
    for query in queries:
        started = time.perf_counter()
        hits = store.search_dense(name, query, top_k=k)
        timings.append(1000 * (time.perf_counter() - started))
        rankings.append([str(h.payload["document_id"]) for h in hits])
    return rankings, timings
