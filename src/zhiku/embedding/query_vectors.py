"""Query vectors for searches: kept per process, and embedded together when searches arrive at once.

- **Kept**: a repeated search (the same question asked again, a page of results reloaded, a popular query) skips
  the model. Keyed by everything that decides the vector: the model, the instruction, the dimension and the exact
  query; bounded by ``query_cache_size`` entries (least recently used evicted; 0: off). A 512-dimension vector is
  2 KiB, so the default 4096 entries hold 8 MiB. Document embeddings have their own cache
  (:mod:`zhiku.embedding.cache`); queries are kept apart because they are many, short and cheap to recompute,
  and a process-local dictionary answers in microseconds.
- **Embedded together**: the model runs one batch at a time. Searches that arrive while it is busy wait, and the
  first of them to get the model embeds all that are waiting (up to ``query_batch_size``) in one batch: a batch
  of 16 short queries costs the default model about a third per query of 16 separate calls, so concurrent
  searches get faster instead of queueing one by one. A lone search is embedded at once, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from zhiku.embedding.base import Embedder

Key = tuple[str, str | None, int | None, str]


@dataclass
class _Waiting:
    """One search's query, waiting for a batch."""

    embedder: Embedder
    key: Key
    future: Future[NDArray[np.float32]] = field(default_factory=Future)

    @property
    def group(self) -> tuple[int, str | None, int | None]:
        """Queries of one group can share a model call (same embedder, instruction and dimension)."""
        return id(self.embedder), self.key[1], self.key[2]


class QueryVectors:
    """A bounded, thread-safe LRU of query vectors in front of :meth:`Embedder.embed`, which batches the queries
    of concurrent searches."""

    def __init__(self, size: int, batch_size: int = 32) -> None:
        self.size = size
        self.batch_size = max(1, batch_size)
        self._vectors: OrderedDict[Key, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._model = threading.Lock()  # one batch at a time
        self.hits = 0
        self.misses = 0
        self.batches = 0

    def vector(
        self, embedder: Embedder, model: str, query: str, *, instruction: str | None, dimensions: int | None
    ) -> NDArray[np.float32]:
        """The query's vector: from the cache, else from ``embedder`` (with the queries of concurrent searches)."""
        key: Key = (model, instruction, dimensions, query)
        with self._lock:
            found = self._vectors.get(key) if self.size > 0 else None
            if found is not None:
                self._vectors.move_to_end(key)
                self.hits += 1
                return found
            waiting = _Waiting(embedder, key)
            self._waiting.append(waiting)
        while not waiting.future.done():
            with self._model:
                if waiting.future.done():  # embedded by the search that held the model
                    break
                with self._lock:
                    batch, self._waiting = self._waiting[: self.batch_size], self._waiting[self.batch_size :]
                self._embed(batch)
        vector = waiting.future.result()
        if self.size > 0:
            with self._lock:
                self.misses += 1
                self._vectors[key] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return vector

    def _embed(self, batch: Sequence[_Waiting]) -> None:
        """Embed ``batch`` in one model call per group; a group whose call fails is embedded query by query, so
        that one bad query fails alone. Every member's future is settled, whatever happens (a waiting search
        whose query left the queue would otherwise wait for ever)."""
        groups: dict[tuple[int, str | None, int | None], list[_Waiting]] = {}
        for waiting in batch:
            groups.setdefault(waiting.group, []).append(waiting)
        try:
            for members in groups.values():
                try:
                    self._embed_group(members)
                except Exception as exc:  # noqa: BLE001 - handed to the searches that asked, which re-raise it
                    if len(members) == 1:
                        members[0].future.set_exception(exc)
                        continue
                    for member in members:
                        try:
                            self._embed_group([member])
                        except Exception as alone:  # noqa: BLE001 - the search that asked re-raises it
                            member.future.set_exception(alone)
        finally:
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(RuntimeError("the query embedding was interrupted"))

    def _embed_group(self, members: Sequence[_Waiting]) -> None:
        first = members[0]
        result = first.embedder.embed(
            [member.key[3] for member in members],
            input_type="query",
            instruction=first.key[1],
            dimensions=first.key[2],
        )
        self.batches += 1
        for member, row in zip(members, result.vectors, strict=True):
            vector = np.asarray(row, dtype=np.float32)
            vector.setflags(write=False)  # shared between searches: nobody may change it in place
            member.future.set_result(vector)
