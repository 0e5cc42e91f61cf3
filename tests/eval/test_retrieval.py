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
