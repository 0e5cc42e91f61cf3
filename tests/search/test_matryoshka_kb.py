"""A knowledge base with Matryoshka two-stage search, end to end, on the tiny random Qwen3 (mechanics only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.pipeline.tasks import job_runner
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search

TEXTS = [f"Document {i} talks about topic {i % 5} and item {i * 7 % 11}." for i in range(24)]


def test_two_stage_kb_returns_full_dimension_scores(tiny_qwen3: Path, tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "mrl", model=str(tiny_qwen3), index_dimension=32)
        assert kb.index_dimension == 32
        assert zhiku.vectors.index_dimension(kb.collection) == 32  # type: ignore[attr-defined]
        jobs = []
        for index, text in enumerate(TEXTS):
            path = tmp_path / f"{index}.txt"
            path.write_text(text, encoding="utf-8")
            jobs.append(register_file(zhiku, kb, path).job_id or "")
        with job_runner(zhiku) as runner:
            runner.wait_for(jobs, timeout=300)
        query = "topic 3 item 5"
        hits = search(zhiku, kb, query, SearchOptions(mode="dense", top_k=5))
        embedder = zhiku.embedder_for(kb)
        q = embedder.embed(query, input_type="query").vectors[0]
        docs = embedder.embed(TEXTS).vectors
        exact = {text: float(vector @ q) for text, vector in zip(TEXTS, docs, strict=True)}
        assert len(hits) == 5
        for hit in hits:  # stage 2 rescored at the full 64 dimensions
            assert np.isclose(hit.scores["dense"], exact[hit.text], atol=1e-4)
        assert [h.text for h in hits] == sorted(exact, key=exact.__getitem__, reverse=True)[:5]
    finally:
        zhiku.close()


def test_index_dimension_needs_a_matryoshka_model(tmp_path: Path, tiny_qwen3: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        with pytest.raises(InvalidInputError, match="not a Matryoshka model"):
            create_knowledge_base(zhiku, "use", index_dimension=128)
        with pytest.raises(InvalidInputError, match="index dimension must be 32 to 63"):
            create_knowledge_base(zhiku, "big", model=str(tiny_qwen3), index_dimension=64)
    finally:
        zhiku.close()
