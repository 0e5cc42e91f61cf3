"""The per-process cache of query vectors, with the real default model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.embedding import get_embedder
from zhiku.embedding.query_vectors import QueryVectors
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.search.retrieve import search

MODEL = "use-multilingual-v3"


def test_a_repeated_query_is_served_from_the_cache_with_the_models_vector() -> None:
    embedder = get_embedder(MODEL)
    cache = QueryVectors(size=2)
    first = cache.vector(embedder, MODEL, "大熊猫吃什么？", instruction=None, dimensions=None)
    again = cache.vector(embedder, MODEL, "大熊猫吃什么？", instruction=None, dimensions=None)
    assert (cache.hits, cache.misses) == (1, 1)
    assert again is first
    fresh = embedder.embed("大熊猫吃什么？", input_type="query").vectors[0]
    np.testing.assert_allclose(first, fresh, atol=1e-6)
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0  # shared between searches

    cache.vector(embedder, "another-model", "大熊猫吃什么？", instruction=None, dimensions=None)  # another key
    cache.vector(embedder, MODEL, "green tea", instruction=None, dimensions=None)  # evicts the oldest
    assert cache.misses == 3
    cache.vector(embedder, MODEL, "大熊猫吃什么？", instruction=None, dimensions=None)
    assert cache.misses == 4  # it was evicted: at most ``size`` entries

    off = QueryVectors(size=0)
    for _ in range(2):
        off.vector(embedder, MODEL, "green tea", instruction=None, dimensions=None)
    assert (off.hits, off.misses) == (0, 0)


def test_searches_share_the_cache(tmp_path: Path) -> None:
    with Zhiku(Settings(home=tmp_path / "home")) as zhiku:
        kb = create_knowledge_base(zhiku, "kb")
        for _ in range(3):
            search(zhiku, kb, "what do pandas eat")
        assert (zhiku.query_vectors.hits, zhiku.query_vectors.misses) == (2, 1)
    with Zhiku(Settings(home=tmp_path / "home", query_cache_size=0)) as zhiku:
        kb = create_knowledge_base(zhiku, "other")
        search(zhiku, kb, "what do pandas eat")
        assert zhiku.query_vectors.hits == 0
