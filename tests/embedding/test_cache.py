"""The served-embeddings cache: disk LRU with a size bound, Redis, and the service reading through it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require
from zhiku.config import Settings
from zhiku.embedding.cache import CachedEmbedding, DiskCache, RedisCache, cache_key, create_cache
from zhiku.embedding.service import EmbeddingService
from zhiku.errors import ConfigError

REDIS_URL = "redis://127.0.0.1:6379/15"


def entry(seed: int, dim: int = 256) -> CachedEmbedding:
    return CachedEmbedding(np.random.default_rng(seed).standard_normal(dim).astype(np.float32), seed)


def test_keys_separate_model_truncation_and_exact_input() -> None:
    keys = {
        cache_key("m", "end", "text"),
        cache_key("m2", "end", "text"),
        cache_key("m", "pool", "text"),
        cache_key("m", "end", "Instruct: x\nQuery:text"),
        cache_key("m", "endtext", ""),  # length-prefixed parts: no ambiguity from concatenation
    }
    assert len(keys) == 5
    assert cache_key("m", "end", "text") == cache_key("m", "end", "text")


def test_disk_cache_round_trip_and_lru_bound(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c", max_bytes=1024 * 1024)
    stored = entry(1)
    cut = CachedEmbedding(stored.vector, 512, truncated=True)
    cache.put_many([("a", stored), ("cut", cut)])
    found = cache.get_many(["a", "missing", "cut"])
    assert found[1] is None
    assert found[0] is not None
    assert (found[0].tokens, found[0].truncated) == (1, False)
    assert found[2] is not None
    assert (found[2].tokens, found[2].truncated) == (512, True)
    assert np.array_equal(found[0].vector, stored.vector)
    # write ~4 MB of 1 KB entries into a 1 MB cache: it stays bounded, and the recent entries survive
    for start in range(0, 4000, 500):
        cache.put_many([(f"k{i}", entry(i)) for i in range(start, start + 500)])
    assert cache.volume() < 1.5 * 1024 * 1024
    assert cache.get_many(["k3999"])[0] is not None
    assert cache.get_many(["k0"])[0] is None
    cache.close()


def test_redis_cache_round_trip_and_ttl() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError:
        require(False, "Redis not reachable at 127.0.0.1:6379")
    cache = RedisCache(REDIS_URL, ttl_seconds=60, prefix="zhiku-test:")
    stored = entry(7)
    cache.put_many([("x", stored)])
    found = cache.get_many(["x", "nope"])
    assert found[0] is not None
    assert np.array_equal(found[0].vector, stored.vector)
    assert found[1] is None
    client = redis.Redis.from_url(REDIS_URL)
    assert 0 < int(client.ttl("zhiku-test:x")) <= 60  # type: ignore[arg-type]
    client.delete("zhiku-test:x")
    cache.close()


def test_redis_being_down_means_misses_not_errors() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0", ttl_seconds=60)
    assert cache.get_many(["a", "b"]) == [None, None]
    cache.put_many([("a", entry(1))])  # swallowed
    cache.close()


def test_create_cache_follows_settings(tmp_path: Path) -> None:
    assert create_cache(Settings(home=tmp_path, embedding_cache="off")) is None
    assert isinstance(create_cache(Settings(home=tmp_path)), DiskCache)
    with pytest.raises(ConfigError, match="redis_url"):
        create_cache(Settings(home=tmp_path, embedding_cache="redis"))


def test_service_serves_repeats_from_the_cache_with_the_same_vectors_and_usage(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = EmbeddingService(Settings(home=tmp_path))
        await service.start()
        try:
            first = await service.embed("use-multilingual-v3", ["知识库", "search engine"])
            assert first.cache_hits == 0
            again = await service.embed("use-multilingual-v3", ["search engine", "知识库", "new text"])
            assert again.cache_hits == 2
            assert np.allclose(again.vectors[0], first.vectors[1], atol=1e-6)
            assert np.allclose(again.vectors[1], first.vectors[0], atol=1e-6)
            english = await service.embed("use-multilingual-v3", ["search engine"])
            chinese = await service.embed("use-multilingual-v3", ["知识库"])
            assert english.prompt_tokens + chinese.prompt_tokens == first.prompt_tokens  # usage on hits too
            assert service.cache_stats.hits == 4
            assert service.cache_stats.misses == 3
            # a cut input is reported as cut when served again from the cache
            long = ["word " * 2000, "short"]
            cut = await service.embed("use-multilingual-v3", long, truncate="end")
            cut_again = await service.embed("use-multilingual-v3", long, truncate="end")
            pooled = await service.embed("use-multilingual-v3", long, truncate="pool")
            assert (cut.cache_hits, cut_again.cache_hits) == (0, 2)
            assert cut.truncated == cut_again.truncated == 1
            assert pooled.truncated == 0
            assert cut_again.prompt_tokens == cut.prompt_tokens
        finally:
            await service.stop()

    asyncio.run(scenario())
