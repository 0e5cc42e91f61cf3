"""Retrieval metrics, and the default model's quality floor on the shared cross-lingual sets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.eval.retrieval import evaluate_dense, load_beir, rank_metrics


def test_rank_metrics() -> None:
    assert rank_metrics(["a", "b"], {"a": 1}) == (1.0, 1.0, 1.0)
    ndcg, recall, mrr = rank_metrics(["x", "a"], {"a": 1})
    assert math.isclose(ndcg, 1 / math.log2(3))
    assert (recall, mrr) == (1.0, 0.5)
    assert rank_metrics(["x"], {"a": 1}) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("name", "floor"), [("xquad-qzh-cen", 0.80), ("xquad-zh", 0.85)])
def test_default_model_quality_floor(evaldata: Path, tmp_path: Path, name: str, floor: float) -> None:
    """Issue #2's bar for the offline default: Chinese queries find English (and Chinese) passages."""
    embedder = create_embedder(resolve_model("use-multilingual-v3"), Settings(home=tmp_path))
    scores = evaluate_dense(embedder, load_beir(evaldata / "retrieval" / name))
    assert scores.queries == 1190
    assert scores.ndcg_at_10 >= floor, scores


def test_zhiku_eval_through_the_pipeline_prints_json(evaldata: Path, tmp_path: Path) -> None:
    """`zhiku eval` ingests the corpus through the real pipeline and prints one JSON object per mode."""
    import json
    import os
    import subprocess
    import sys

    zhiku_bin = str(Path(sys.executable).parent / "zhiku")
    env = {**os.environ, "ZHIKU_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [zhiku_bin, "eval", str(evaldata / "retrieval" / "xquad-zh"), "--limit", "40", "--json"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["mode"] for r in rows] == ["dense", "lexical", "hybrid"]
    keys = {"ndcg_at_10", "recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10", "latency_p50_ms", "latency_p95_ms"}
    for row in rows:
        assert keys <= set(row)
        assert row["queries"] == 40
        assert 0.5 < row["ndcg_at_10"] <= 1.0
