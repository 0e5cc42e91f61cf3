"""The per-process cache of query vectors, with the real default model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.embedding import get_embedder
from zhiku.embedding.factory import create_embedder
from zhiku.embedding.models import resolve_model
from zhiku.embedding.query_vectors import QueryVectors
from zhiku.errors import InvalidInputError
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


def test_concurrent_queries_are_embedded_in_one_batch_each_with_its_own_vector() -> None:
    embedder = get_embedder(MODEL)
    cache = QueryVectors(size=100, batch_size=32)
    queries = [f"question number {n}: what do pandas eat?" for n in range(12)] + ["大熊猫吃什么？", "绿茶发酵吗？"]
    results: dict[str, np.ndarray] = {}
    with cache._model:  # the model is busy: every search queues (white box: made deterministic)
        threads = [
            threading.Thread(
                target=lambda q=q: results.__setitem__(
                    q, cache.vector(embedder, MODEL, q, instruction=None, dimensions=None)
                )
            )
            for q in queries
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(cache._waiting) < len(queries) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=60)
    assert cache.batches == 1  # one model call for the fourteen searches
    for query in queries:
        alone = embedder.embed(query, input_type="query").vectors[0]
        np.testing.assert_allclose(results[query], alone, atol=1e-5)


def test_a_query_that_fails_fails_alone_and_nothing_waits_for_ever() -> None:
    embedder = create_embedder(resolve_model(MODEL), Settings(max_input_chars=40))
    cache = QueryVectors(size=0, batch_size=8)
    outcomes: dict[str, object] = {}

    def ask(query: str) -> None:
        try:
            outcomes[query] = cache.vector(embedder, MODEL, query, instruction=None, dimensions=None)
        except InvalidInputError as exc:
            outcomes[query] = exc

    good, bad = "short question", "a question far longer than the forty characters allowed here"
    with cache._model:
        threads = [threading.Thread(target=ask, args=(q,)) for q in (good, bad)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(cache._waiting) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert isinstance(outcomes[good], np.ndarray)
    assert isinstance(outcomes[bad], InvalidInputError)
