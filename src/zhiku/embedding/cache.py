"""Cache of served embeddings: a bounded LRU on disk (diskcache) by default, Redis when configured.

A key names everything that decides the vector: the model, the exact string the model reads (the query
instruction and prompt already applied, see :meth:`Embedder.format_input`), the truncation mode and the text.
The value is the full-dimension vector plus the token count (usage is reported on hits too) and whether the input
was cut at the model's limit (the header's top bit: entries written before it read as not cut). Matryoshka
dimensions are derived from the full vector on the way out, so one entry serves every requested dimension.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from zhiku.config import Settings

_HEADER = struct.Struct("<I")
_TRUNCATED_BIT = 1 << 31


@dataclass(frozen=True)
class CachedEmbedding:
    """A cached full-dimension vector, the tokens its input took and whether it was cut at the model's limit."""

    vector: np.ndarray
    tokens: int
    truncated: bool = False


def cache_key(model: str, truncate: str, model_input: str) -> str:
    """The cache key of one input: a SHA-256 over the model, the truncation mode and the exact model input."""
    digest = hashlib.sha256()
    for part in (model, truncate, model_input):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def _pack(entry: CachedEmbedding) -> bytes:
    header = entry.tokens | (_TRUNCATED_BIT if entry.truncated else 0)
    return _HEADER.pack(header) + np.asarray(entry.vector, dtype="<f4").tobytes()


def _unpack(blob: bytes) -> CachedEmbedding:
    (header,) = _HEADER.unpack_from(blob)
    vector = np.frombuffer(blob, dtype="<f4", offset=_HEADER.size).astype(np.float32)
    return CachedEmbedding(vector, header & ~_TRUNCATED_BIT, bool(header & _TRUNCATED_BIT))


class EmbeddingCache(Protocol):
    """Where served embeddings are kept."""

    def get_many(self, keys: Sequence[str]) -> list[CachedEmbedding | None]:
        """The entries of ``keys`` in order, ``None`` for misses."""
        ...

    def put_many(self, items: Sequence[tuple[str, CachedEmbedding]]) -> None:
        """Store entries (failures are swallowed: a cache never fails a request)."""
        ...

    def close(self) -> None:
        """Release files or connections."""
        ...


class DiskCache:
    """A size-bounded least-recently-used cache in a diskcache directory (SQLite index + files)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        import diskcache

        directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(
            str(directory), size_limit=max_bytes, eviction_policy="least-recently-used", statistics=False
        )

    def get_many(self, keys: Sequence[str]) -> list[CachedEmbedding | None]:
        """The entries of ``keys`` in order, ``None`` for misses."""
        found: list[CachedEmbedding | None] = []
        for key in keys:
            blob = self._cache.get(key)
            found.append(_unpack(blob) if isinstance(blob, bytes) else None)
        return found

    def put_many(self, items: Sequence[tuple[str, CachedEmbedding]]) -> None:
        """Store entries; the least recently used ones are evicted beyond the size bound."""
        # one transaction per entry: inside a multi-set transaction diskcache's culling empties the cache
        for key, entry in items:
            self._cache.set(key, _pack(entry))

    def volume(self) -> int:
        """Bytes the cache takes on disk."""
        return int(self._cache.volume())

    def close(self) -> None:
        """Close the cache's database."""
        self._cache.close()


class RedisCache:
    """Embeddings in Redis with a TTL, shared by every zhiku process that points at the same server."""

    def __init__(self, url: str, ttl_seconds: int, prefix: str = "zhiku:emb:") -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._ttl = ttl_seconds
        self._prefix = prefix

    def get_many(self, keys: Sequence[str]) -> list[CachedEmbedding | None]:
        """The entries of ``keys`` in order; ``None`` for misses (and for everything if Redis is down)."""
        import redis

        if not keys:
            return []
        try:
            blobs = self._client.mget([self._prefix + key for key in keys])
        except redis.RedisError:
            return [None] * len(keys)
        return [_unpack(blob) if isinstance(blob, bytes) else None for blob in blobs]

    def put_many(self, items: Sequence[tuple[str, CachedEmbedding]]) -> None:
        """Store entries with the TTL; Redis errors are ignored (a cache never fails a request)."""
        import redis

        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key, entry in items:
                    pipe.set(self._prefix + key, _pack(entry), ex=self._ttl)
                pipe.execute()
        except redis.RedisError:
            return

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class CacheStats:
    """Thread-safe hit and miss counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def record(self, hits: int, misses: int) -> None:
        """Add a lookup's outcome."""
        with self._lock:
            self.hits += hits
            self.misses += misses

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups so far (0 before any)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def create_cache(settings: Settings) -> EmbeddingCache | None:
    """The cache the settings ask for, or ``None`` when it is off."""
    if settings.embedding_cache == "off":
        return None
    if settings.embedding_cache == "redis":
        if not settings.redis_url:
            from zhiku.errors import ConfigError

            raise ConfigError("embedding_cache = 'redis' needs redis_url (ZHIKU_REDIS_URL)")
        return RedisCache(settings.redis_url, settings.cache_ttl_seconds)
    return DiskCache(settings.home / "cache" / "embeddings", settings.cache_max_bytes)
