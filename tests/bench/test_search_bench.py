"""The search latency benchmark runs end to end on a small real collection (no timing asserts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zhiku.bench.search import (
    BENCH_KB,
    bench_search,
    build_synthetic_collection,
    describe_build,
    load_queries,
    query_vectors,
    render_table,
    synthetic_vectors,
)
from zhiku.storage.vectors.base import SearchFilter
from zhiku.storage.vectors.qdrant_edge import QdrantEdgeStore

POINTS, DIMENSION = 2000, 64


def test_build_and_bench_word_soup(tmp_path: Path) -> None:
    with QdrantEdgeStore(tmp_path / "vectors") as store:
        build = build_synthetic_collection(store, "bench", points=POINTS, dimension=DIMENSION, seed=3)
        assert build.points == POINTS == store.count("bench")
        assert store.count("bench", SearchFilter(kb_id=BENCH_KB)) == POINTS
        assert build.disk_bytes is not None
        assert build.disk_bytes > 0
        assert build.upsert_seconds > 0
        assert build.optimize_seconds >= 0
        assert f"{POINTS:,} synthetic points" in describe_build(build)

        results = bench_search(
            store, "bench", queries=40, top_k=10, modes=("dense", "hybrid", "text", "rrf"), warmup=5, seed=3
        )
        assert [r.mode for r in results] == ["dense", "hybrid", "text", "rrf"]
        for r in results:
            assert r.points == POINTS
            assert r.concurrency == 1
            assert r.queries == 40
            assert not r.filtered
            assert 0 < r.p50_ms <= r.p95_ms <= r.p99_ms
            assert r.mean_ms > 0
            assert r.qps > 0

        threaded = bench_search(
            store, "bench", queries=30, top_k=10, modes=("dense",), concurrency=4, with_filter=True, warmup=2, seed=3
        )
        assert len(threaded) == 1
        assert threaded[0].concurrency == 4
        assert threaded[0].filtered
        assert threaded[0].p50_ms > 0

        table = render_table(results + threaded)
        assert table.startswith("| mode | points |")
        assert table.count("\n") == 2 + len(results)
        assert "| dense | 2,000 | 4 | 30 | 10 | kb |" in table


def test_queries_have_near_neighbours(tmp_path: Path) -> None:
    with QdrantEdgeStore(tmp_path / "vectors") as store:
        build_synthetic_collection(store, "bench", points=POINTS, dimension=DIMENSION, seed=5)
        queries = query_vectors(5, POINTS, DIMENSION, 5)
        assert queries.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-5)
        for vector in queries:
            top = store.search_dense("bench", vector, top_k=2)
            assert top[0].score > 0.7 > top[1].score  # the perturbed source point stands out


def test_synthetic_vectors_are_reproducible() -> None:
    first = synthetic_vectors(7, 3, 10, DIMENSION)
    np.testing.assert_array_equal(first, synthetic_vectors(7, 3, 10, DIMENSION))
    assert not np.array_equal(first, synthetic_vectors(7, 4, 10, DIMENSION))
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)


def test_build_from_beir_passages(evaldata: Path, tmp_path: Path) -> None:
    corpora = [evaldata / "retrieval" / "xquad-zh", evaldata / "retrieval" / "xquad-en"]
    with QdrantEdgeStore(tmp_path / "vectors") as store:
        build_synthetic_collection(store, "bench", points=600, dimension=16, texts_from=corpora, documents=10)
        assert store.count("bench") == 600
        assert store.count("bench", SearchFilter(document_ids=["doc-000000"])) == 60
        texts = load_queries(corpora, limit=8)
        assert len(texts) == 8
        results = bench_search(store, "bench", queries=8, modes=("text",), query_texts=texts, warmup=1)
        assert results[0].mode == "text"
        assert results[0].p50_ms > 0
        hits = store.search_text("bench", "黑豹队的防守", top_k=3)
        assert hits
        assert "黑豹队" in hits[0].payload["text"]


def test_rejects_unknown_mode(tmp_path: Path) -> None:
    with QdrantEdgeStore(tmp_path / "vectors") as store:
        build_synthetic_collection(store, "bench", points=10, dimension=8)
        with pytest.raises(ValueError, match="unknown search mode"):
            bench_search(store, "bench", queries=2, modes=("sparse",))
