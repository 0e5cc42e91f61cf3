"""Matryoshka two-stage search in the Qdrant Edge store, on real shards in tmp_path (no mocks).

Stage 1 searches the re-normalised prefix vector, stage 2 rescores the candidates with the full vector. The
synthetic vectors below have a decaying per-component spectrum (most of the energy in the first components), the
property a Matryoshka-trained embedding has, so that the prefix candidates contain the true top 10.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from zhiku.bench.matryoshka import measure, prefix_vectors
from zhiku.errors import ConflictError, InvalidInputError
from zhiku.storage.vectors import SearchFilter, VectorPoint
from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

COLLECTION = "mrl"


def decaying(rng: np.random.Generator, count: int, dim: int, tau: float = 48.0) -> np.ndarray:
    """Random unit vectors whose component ``i`` has standard deviation ``exp(-i / tau)`` before normalising."""
    matrix = rng.standard_normal((count, dim)) * np.exp(-np.arange(dim) / tau)
    return np.asarray(matrix / np.linalg.norm(matrix, axis=1, keepdims=True), dtype=np.float32)


def make_points(
    vectors: np.ndarray, *, kb_ids: list[str] | None = None, texts: list[str] | None = None
) -> list[VectorPoint]:
    return [
        VectorPoint(
            id=str(uuid.uuid4()),
            vector=vector,
            text=texts[i] if texts else "",
            payload={"kb_id": kb_ids[i] if kb_ids else "kb", "document_id": f"d{i}", "version": 1},
        )
        for i, vector in enumerate(vectors)
    ]


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the exact full-dimension top ``k``."""
    scores = vectors @ (query / np.linalg.norm(query))
    top = np.argsort(-scores, kind="stable")[:k]
    return top, scores[top]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QdrantEdgeStore]:
    store = QdrantEdgeStore(tmp_path / "vectors")
    yield store
    store.close()


@pytest.mark.parametrize(
    ("optimize", "hnsw_ef"), [(False, None), (True, None), (True, 256)], ids=["exact-scan", "hnsw", "hnsw-ef256"]
)
def test_two_stage_equals_brute_force(tmp_path: Path, optimize: bool, hnsw_ef: int | None) -> None:
    """2,000 points dim 256 indexed at 64, top 10 from 100 candidates: the exact full-dimension top 10.

    Without ``optimize`` stage 1 is an exact scan of the prefixes; with it, an HNSW search (threshold lowered so
    that 2,000 points get a graph), with Qdrant's default beam or a wider one.
    """
    rng = np.random.default_rng(0)
    vectors = decaying(rng, 2000, 256)
    queries = decaying(rng, 40, 256)
    with QdrantEdgeStore(tmp_path / "vectors", indexing_threshold_kb=100, hnsw_ef=hnsw_ef) as store:
        store.ensure_collection(COLLECTION, 256, index_dimension=64)
        points = make_points(vectors)
        store.upsert(COLLECTION, points)
        if optimize:
            store.optimize(COLLECTION)
            disk = store.memory_report(COLLECTION).disk_bytes
            assert disk["vector_index-index"] > 4 * disk["vector_index-full"]  # the graph is on the prefix only
        assert store.count(COLLECTION) == 2000
        index_of = {p.id: i for i, p in enumerate(points)}
        prefixes = prefix_vectors(vectors, 64)
        recalls = []
        for query in queries:
            hits = store.search_dense(COLLECTION, query, top_k=10)
            top, scores = brute_force(vectors, query, 10)
            # the case under test: the exact prefix top 100 holds the full top 10
            assert set(top) <= set(np.argsort(-(prefixes @ prefix_vectors(query[None], 64)[0]))[:100])
            returned = [index_of[h.id] for h in hits]
            recalls.append(len(set(returned) & set(top)) / 10)
            # every score is the full-dimension cosine of the returned point, in descending order
            for hit, index in zip(hits, returned, strict=True):
                assert hit.score == pytest.approx(float(vectors[index] @ query), abs=1e-4)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            if set(returned) == set(top):
                np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-4)
    assert np.mean(recalls) >= 0.95, f"recall@10 {np.mean(recalls):.3f}"
    if not optimize:  # stage 1 is an exact scan of the prefixes: the result is exactly the brute force
        assert np.mean(recalls) == 1.0


def test_stage_two_reorders_by_the_full_vector(store: QdrantEdgeStore) -> None:
    """A point that wins on the prefix but loses on the full vector is ranked by the full vector."""
    dim, index = 64, 32
    query = np.zeros(dim, dtype=np.float32)
    query[0], query[index] = 1.0, 1.0
    prefix_winner = np.zeros(dim, dtype=np.float32)
    prefix_winner[0], prefix_winner[index + 1] = 1.0, 1.0  # prefix identical to the query's, suffix orthogonal
    full_winner = np.zeros(dim, dtype=np.float32)
    full_winner[0], full_winner[1], full_winner[index] = 1.0, 0.3, 1.0  # slightly worse prefix, matching suffix
    store.ensure_collection(COLLECTION, dim, index_dimension=index)
    points = make_points(np.stack([prefix_winner, full_winner]))
    store.upsert(COLLECTION, points)
    hits = store.search_dense(COLLECTION, query, top_k=2)
    assert [h.id for h in hits] == [points[1].id, points[0].id]
    unit = query / np.linalg.norm(query)
    assert hits[0].score == pytest.approx(float(full_winner @ unit / np.linalg.norm(full_winner)), abs=1e-5)
    assert hits[1].score == pytest.approx(0.5, abs=1e-5)  # full cosine, not the prefix cosine 1.0
    bare = store.search_dense(COLLECTION, query, top_k=2, with_payload=False)  # as a search asks
    assert [(h.id, h.payload) for h in bare] == [(points[1].id, {}), (points[0].id, {})]


def test_reopen_keeps_index_dimension(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    rng = np.random.default_rng(1)
    vectors = decaying(rng, 300, 128)
    first = QdrantEdgeStore(path)
    first.ensure_collection(COLLECTION, 128, index_dimension=32)
    points = make_points(vectors)
    first.upsert(COLLECTION, points)
    assert first.index_dimension(COLLECTION) == 32
    first.close()

    config = json.loads((path / COLLECTION / "edge_config.json").read_text(encoding="utf-8"))
    assert {name: params["size"] for name, params in config["vectors"].items()} == {"full": 128, "index": 32}
    assert config["vectors"]["full"]["hnsw_config"]["m"] == 0  # no graph for the rescoring vector

    second = QdrantEdgeStore(path)
    try:
        assert second.has_collection(COLLECTION)
        assert second.dimension(COLLECTION) == 128
        assert second.index_dimension(COLLECTION) == 32
        second.ensure_collection(COLLECTION, 128, index_dimension=32)  # same layout: fine
        hits = second.search_dense(COLLECTION, vectors[7], top_k=3)
        assert hits[0].id == points[7].id
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        second.upsert(COLLECTION, make_points(decaying(rng, 10, 128)))  # prefixes still computed after reopen
        assert second.count(COLLECTION) == 310
    finally:
        second.close()


def test_layout_conflicts_and_invalid_index_dimension(store: QdrantEdgeStore, tmp_path: Path) -> None:
    store.ensure_collection(COLLECTION, 128, index_dimension=64)
    store.ensure_collection("plain", 128)
    with pytest.raises(ConflictError, match="index dimension 64, not index dimension 32"):
        store.ensure_collection(COLLECTION, 128, index_dimension=32)
    with pytest.raises(ConflictError, match="index dimension 64, not no reduced index dimension"):
        store.ensure_collection(COLLECTION, 128)
    with pytest.raises(ConflictError, match="no reduced index dimension, not index dimension 64"):
        store.ensure_collection("plain", 128, index_dimension=64)
    with pytest.raises(ConflictError, match="dimension 128, not 256"):
        store.ensure_collection(COLLECTION, 256, index_dimension=64)
    store.close()
    reopened = QdrantEdgeStore(tmp_path / "vectors")  # not open yet: the layout is read from disk
    try:
        with pytest.raises(ConflictError, match="index dimension 64"):
            reopened.ensure_collection(COLLECTION, 128, index_dimension=48)
        with pytest.raises(ConflictError, match="no reduced index dimension"):
            reopened.ensure_collection("plain", 128, index_dimension=48)
        reopened.ensure_collection(COLLECTION, 128, index_dimension=64)
        reopened.ensure_collection("plain", 128)
        for bad in (16, 31, 128, 300, True, 64.0):
            with pytest.raises(InvalidInputError, match="index_dimension"):
                reopened.ensure_collection("new", 128, index_dimension=bad)  # type: ignore[arg-type]
        assert not reopened.has_collection("new")
        with pytest.raises(InvalidInputError, match="dimension 64 does not match"):
            reopened.upsert(COLLECTION, make_points(decaying(np.random.default_rng(2), 1, 64)))
        with pytest.raises(InvalidInputError, match="dimension 64 does not match"):
            reopened.search_dense(COLLECTION, np.ones(64, dtype=np.float32))
    finally:
        reopened.close()


def test_filters_apply_to_both_stages(store: QdrantEdgeStore) -> None:
    """A filter whose points are all far from the query still returns them: stage 1 is filtered too."""
    rng = np.random.default_rng(3)
    dim = 128
    query = decaying(rng, 1, dim)[0]
    near = decaying(rng, 400, dim) * 0.2 + query  # 400 points around the query in kb "near"
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    far = decaying(rng, 30, dim)  # 30 random points in kb "far"
    vectors = np.concatenate([near, far])
    kb_ids = ["near"] * 400 + ["far"] * 30
    store.ensure_collection(COLLECTION, dim, index_dimension=32)
    points = make_points(vectors, kb_ids=kb_ids)
    store.upsert(COLLECTION, points)

    hits = store.search_dense(COLLECTION, query, top_k=10, filter=SearchFilter(kb_id="far"))
    assert {h.payload["kb_id"] for h in hits} == {"far"}
    top, scores = brute_force(far, query, 10)
    assert [h.id for h in hits] == [points[400 + i].id for i in top]
    np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-4)

    wanted = ["d3", "d401", "missing"]
    by_docs = store.search_dense(COLLECTION, query, top_k=10, filter=SearchFilter(document_ids=wanted))
    assert {h.payload["document_id"] for h in by_docs} == {"d3", "d401"}
    assert store.search_dense(COLLECTION, query, filter=SearchFilter(document_ids=[])) == []
    hybrid = store.search_hybrid(COLLECTION, query, "anything", top_k=10, filter=SearchFilter(kb_id="far"))
    assert hybrid
    assert {h.payload["kb_id"] for h in hybrid} == {"far"}
    assert store.count(COLLECTION, SearchFilter(kb_id="far")) == 30
    assert store.delete(COLLECTION, document_id="d401") == 1
    assert "d401" not in {h.payload["document_id"] for h in store.search_dense(COLLECTION, query, top_k=50)}


def test_hybrid_two_stage_dense_side_and_text(store: QdrantEdgeStore) -> None:
    rng = np.random.default_rng(4)
    dim = 64
    vectors = decaying(rng, 200, dim, tau=24)
    texts = [f"filler passage number {i}" for i in range(200)]
    texts[50] = "大熊猫主要生活在四川的山区竹林里"
    texts[120] = "A volcano erupts when molten rock escapes from a magma chamber."
    store.ensure_collection(COLLECTION, dim, index_dimension=32)
    points = make_points(vectors, texts=texts)
    store.upsert(COLLECTION, points)
    # the vector points at passage 7, the text at the volcano passage: both come back first
    hits = store.search_hybrid(COLLECTION, vectors[7], "volcano magma", top_k=5)
    assert {h.id for h in hits[:2]} == {points[7].id, points[120].id}
    assert all(0 < h.score <= 1 for h in hits)
    assert store.search_text(COLLECTION, "大熊猫")[0].id == points[50].id
    # a blank text query: dense-only fusion, in full-dimension order
    dense_only = store.search_hybrid(COLLECTION, vectors[9], " ", top_k=5)
    top, _ = brute_force(vectors, vectors[9], 5)
    assert [h.id for h in dense_only] == [points[i].id for i in top]


def test_memory_report(store: QdrantEdgeStore) -> None:
    rng = np.random.default_rng(5)
    store.ensure_collection(COLLECTION, 256, index_dimension=64)
    store.ensure_collection("plain", 256)
    vectors = decaying(rng, 3000, 256)
    store.upsert(COLLECTION, make_points(vectors))
    store.upsert("plain", make_points(vectors))
    store.optimize(COLLECTION)
    report = store.memory_report(COLLECTION)
    assert report.points == 3000
    assert report.index_dimension == 64
    assert report.index_vector_bytes == 3000 * 64 * 4
    assert report.full_vector_bytes == report.plain_index_bytes == 3000 * 256 * 4
    assert report.saved_bytes == 3000 * 192 * 4
    assert report.ratio == 4.0
    disk = report.disk_bytes
    assert disk["vector_storage-full"] >= 3000 * 256 * 4
    assert 3000 * 64 * 4 <= disk["vector_storage-index"] < disk["vector_storage-full"]
    if "vector_index-index" in disk:  # HNSW built: the graph is on the prefix vector only
        assert disk.get("vector_index-full", 0) < disk["vector_index-index"]
    as_dict = report.as_dict()
    assert as_dict["ratio"] == 4.0
    assert json.loads(json.dumps(as_dict)) == as_dict
    plain = store.memory_report("plain")
    assert plain.index_dimension is None
    assert plain.ratio == 1.0
    assert plain.saved_bytes == 0
    assert plain.index_vector_bytes == plain.full_vector_bytes == 3000 * 256 * 4


def test_tiny_qwen3_two_stage_mechanics(tiny_qwen3: Path, tmp_path: Path) -> None:
    """Real embeddings of a random-weight Qwen3 (native 64, indexed at 32) through the two-stage path.

    Random weights: this checks the mechanics (truncation, re-normalisation, rescoring), not retrieval quality,
    and the model is not Matryoshka-trained, so its 32-d prefixes need not hold the full top 10. Stage 1 is an
    exact scan on this small collection, so the store must return exactly what a numpy simulation of the
    pipeline returns (prefix top 100, then full-dimension rescoring), and the brute-force full top 10 whenever
    those 100 candidates contain it (always, once the candidates cover the corpus).
    """
    from zhiku.config import Settings
    from zhiku.embedding import create_embedder, resolve_model

    embedder = create_embedder(resolve_model(str(tiny_qwen3)), Settings(home=tmp_path))
    subjects = ["北京", "上海", "熊猫", "绿茶", "火山", "咖啡", "Python", "the ocean", "a library", "the moon"]
    predicates = [
        "是一个很有名的话题。",
        "的历史很长。",
        "has many interesting facts.",
        "was discussed in the report.",
        "在新闻里经常出现。",
        "is the subject of this short note.",
        "和很多人的生活有关。",
        "appears in textbooks.",
        "值得仔细研究。",
        "is often photographed.",
    ]
    documents = [f"{s} {p} ({n})" for n in range(2) for s in subjects for p in predicates]
    assert len(documents) == 200
    queries = ["北京的历史", "熊猫吃什么", "volcano facts", "coffee and tea", "moon photographs", "Python 教程"]
    docs = embedder.embed(documents, input_type="document").vectors
    query_vectors = embedder.embed(queries, input_type="query").vectors
    assert docs.shape == (200, 64)
    docs = docs / np.linalg.norm(docs, axis=1, keepdims=True)

    for name, candidates in (("hundred", 100), ("all", 200)):
        store = QdrantEdgeStore(tmp_path / name, min_rescore_candidates=candidates)
        try:
            store.ensure_collection("qwen", 64, index_dimension=32)
            points = make_points(docs, texts=documents)
            store.upsert("qwen", points)
            index_of = {p.id: i for i, p in enumerate(points)}
            exact = 0
            for query in query_vectors:
                query = query / np.linalg.norm(query)
                hits = store.search_dense("qwen", query, top_k=10)
                returned = [index_of[h.id] for h in hits]
                stage_one = np.argsort(-(prefix_vectors(docs, 32) @ prefix_vectors(query[None], 32)[0]))[:candidates]
                simulated = stage_one[np.argsort(-(docs[stage_one] @ query), kind="stable")][:10]
                assert returned == list(simulated)
                np.testing.assert_allclose([h.score for h in hits], docs[returned] @ query, atol=1e-4)
                top, scores = brute_force(docs, query, 10)
                if set(top) <= set(stage_one):
                    assert returned == list(top)
                    np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-4)
                    exact += 1
            # all 6 with 200 candidates; with 100 the check above must not be vacuous (6/6 measured)
            assert exact == len(queries) if candidates == 200 else exact >= len(queries) // 2
        finally:
            store.close()


def test_bench_measure_on_synthetic_vectors(tmp_path: Path) -> None:
    """The measurement helper: nDCG@10 full vs prefix-only vs two-stage, memory ratio, latency."""
    rng = np.random.default_rng(6)
    corpus = decaying(rng, 1500, 256)
    relevant = rng.choice(1500, size=30, replace=False)
    queries = corpus[relevant] * 0.6 + decaying(rng, 30, 256) * 0.4
    qrels = [{str(int(r)): 1} for r in relevant]
    result = measure(corpus, queries, qrels, 64, compare_plain=True, path=tmp_path / "bench")
    assert result.points == 1500
    assert result.queries == 30
    assert result.memory_ratio == 4.0
    assert result.index_vector_bytes * 4 == result.full_vector_bytes
    assert result.candidates == 100
    assert 0.0 < result.ndcg_full <= 1.0
    assert result.ndcg_points_lost <= 1.0
    assert result.overlap_at_10 >= 0.95
    assert result.two_stage_ms > 0
    assert result.plain_ms is not None
    assert result.plain_ms > 0
    assert result.as_dict()["index_bytes_saved"] == 1500 * 192 * 4
    with pytest.raises(InvalidInputError):
        measure(corpus, queries[:, :128], qrels, 64)
