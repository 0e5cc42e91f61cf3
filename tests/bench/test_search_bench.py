"""The search latency benchmark runs end to end on a small real collection (no timing asserts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zhiku.bench.search import (
    BENCH_KB,
    EmbeddingDistribution,
    bench_search,
    build_synthetic_collection,
    dense_recall,
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
        assert table.startswith("| store | mode | points |")
        assert table.count("\n") == 2 + len(results)
        assert "| edge | dense | 2,000 | 4 | 30 | 10 | kb |" in table


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


def _anisotropic(count: int, dimension: int, seed: int = 0) -> np.ndarray:
    """Samples of a Gaussian whose variance falls off as 1/i over the axes (like real embeddings' spectrum)."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(np.arange(1, dimension + 1, dtype=np.float32))
    return np.asarray(rng.standard_normal((count, dimension)) * scales + 0.3, dtype=np.float32)


def test_fitted_distribution_samples_like_its_data(tmp_path: Path) -> None:
    data = _anisotropic(4000, DIMENSION)
    fitted = EmbeddingDistribution.fit(data)
    assert fitted.dimension == DIMENSION
    np.testing.assert_allclose(fitted.mean, data.mean(axis=0), atol=1e-5)
    # the spectrum is kept: far fewer effective dimensions than uniform random vectors have
    assert 5 < fitted.effective_dimension() < DIMENSION / 3
    uniform = EmbeddingDistribution.fit(np.random.default_rng(1).standard_normal((4000, DIMENSION)))
    assert uniform.effective_dimension() > 0.9 * DIMENSION

    drawn = fitted.sample(np.random.default_rng(2), 4000)
    assert drawn.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(drawn, axis=1), 1.0, rtol=1e-5)
    refit = EmbeddingDistribution.fit(drawn)
    assert abs(refit.effective_dimension() - EmbeddingDistribution.fit(_unit(data)).effective_dimension()) < 3

    np.testing.assert_array_equal(synthetic_vectors(4, 1, 10, DIMENSION, fitted),
                                  synthetic_vectors(4, 1, 10, DIMENSION, fitted))  # fmt: skip
    with pytest.raises(ValueError, match="dimension"):
        synthetic_vectors(4, 1, 10, DIMENSION + 1, fitted)
    fitted.save(tmp_path / "d.npz")
    loaded = EmbeddingDistribution.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded.scale, fitted.scale)
    np.testing.assert_array_equal(loaded.mean, fitted.mean)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_dense_recall_of_an_indexed_quantized_collection(tmp_path: Path) -> None:
    """The HNSW graph, its int8 copy and rescoring are built (tiny indexing threshold) and judged by brute force."""
    fitted = EmbeddingDistribution.fit(_anisotropic(2000, DIMENSION))
    with QdrantEdgeStore(tmp_path / "vectors", indexing_threshold_kb=1) as store:
        build_synthetic_collection(store, "bench", points=POINTS, dimension=DIMENSION, seed=6, distribution=fitted)
        recall = dense_recall(store, "bench", points=POINTS, dimension=DIMENSION, seed=6, distribution=fitted,
                              queries=50)  # fmt: skip
        assert recall >= 0.9
        # query vectors built with another distribution have other near neighbours: recall is then judged on
        # the wrong ground truth and collapses, so the figure above is not vacuous
        wrong = dense_recall(store, "bench", points=POINTS, dimension=DIMENSION, seed=6, queries=50)
        assert wrong < 0.5


def test_edge_and_pgvector_side_by_side(tmp_path: Path, pgvector_url: str, evaldata: Path) -> None:
    """`zhiku bench search --stores edge --stores pgvector`: both built, both timed, rows of both in one table."""
    from zhiku.bench.search import run_search_bench
    from zhiku.config import Settings

    said: list[str] = []
    table, notes = run_search_bench(
        [evaldata / "retrieval" / "xquad-zh"],
        Settings(),
        points=POINTS,
        dimension=DIMENSION,
        vectors="random",
        model=None,
        queries=20,
        rounds=1,
        concurrency=[1, 2],
        store=tmp_path / "store",
        say=said.append,
        stores=["edge", "pgvector"],
        pgvector_url=pgvector_url,
    )
    rows = list(table.splitlines()[2:])
    assert len(rows) == 2 * 2 * 3  # clients x stores x modes
    assert {row.split("|")[1].strip() for row in rows} == {"edge", "pgvector"}
    assert all("| kb |" in row for row in rows)  # the filter every zhiku search sends
    assert "edge dense recall@10" in notes
    assert "pgvector dense recall@10" in notes
    assert said.index("timing edge with 1 client(s)...") < said.index("timing pgvector with 1 client(s)...")


def test_bench_lexical_judges_both_stores(tmp_path: Path, pgvector_url: str) -> None:
    import json

    from zhiku.bench.search import bench_lexical, render_lexical_table
    from zhiku.config import Settings

    corpus = tmp_path / "tiny"
    corpus.mkdir()
    passages = {"p0": "北京是中国的首都。", "p1": "The volcano erupted with ash and lava.", "p2": "Bees make honey."}
    questions = {"q0": "中国的首都", "q1": "volcano lava"}
    (corpus / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in passages.items()))
    (corpus / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in questions.items()))
    (corpus / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tp0\t1\nq1\tp1\t1\n")
    results = bench_lexical([corpus], Settings(), ["edge", "pgvector"], pgvector_url=pgvector_url)
    assert [(r.store, r.queries) for r in results] == [("edge", 2), ("pgvector", 2)]
    assert all(r.ndcg_at_10 == 1.0 for r in results)  # each question finds its passage first
    assert "| tiny | pgvector | 2 | 1.0000 |" in render_lexical_table(results)
