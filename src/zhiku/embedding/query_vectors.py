"""Query vectors kept per process: a repeated search (the same question asked again, a page of results reloaded,
a popular query) skips the model. Keyed by everything that decides the vector: the model, the instruction, the
dimension and the exact query; bounded by ``query_cache_size`` entries (least recently used evicted; 0: off).

A 512-dimension vector is 2 KiB, so the default 4096 entries hold 8 MiB. Document embeddings have their own cache
(:mod:`zhiku.embedding.cache`, ``embedding_cache``); queries are kept apart because they are many, short-lived
and cheap to recompute, and a process-local dictionary answers in microseconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

from zhiku.embedding.base import Embedder

Key = tuple[str, str | None, int | None, str]


class QueryVectors:
    """A bounded, thread-safe LRU of query vectors in front of :meth:`Embedder.embed`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[Key, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def vector(
        self, embedder: Embedder, model: str, query: str, *, instruction: str | None, dimensions: int | None
    ) -> NDArray[np.float32]:
        """The query's vector: from the cache, else from ``embedder`` (and kept)."""
        key: Key = (model, instruction, dimensions, query)
        if self.size > 0:
            with self._lock:
                found = self._vectors.get(key)
                if found is not None:
                    self._vectors.move_to_end(key)
                    self.hits += 1
                    return found
        vector = np.asarray(
            embedder.embed(query, input_type="query", instruction=instruction, dimensions=dimensions).vectors[0],
            dtype=np.float32,
        )
        vector.setflags(write=False)  # shared between searches: nobody may change it in place
        if self.size > 0:
            with self._lock:
                self.misses += 1
                self._vectors[key] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return vector
