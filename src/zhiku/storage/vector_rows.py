"""Vectors kept in memory by id and version, within a byte budget: what a process read of a table of vectors.

A knowledge base's document vectors are compared as a whole (near-duplicates at each ingestion group, similar
documents, topics, auto-tags), and reading all of them from the metadata database costs time linear in the
knowledge base (about 0.5 s for 30,000 documents on SQLite). A document vector is fixed by its key — the document,
its version and the model — so a copy read once stays right for as long as that version is the active one: callers
ask for the versions that are active now and read from the database only what is not here. Nothing goes stale:
a new version, a deleted document or another model simply no longer matches.

Spaces (one per knowledge base and model) are evicted least recently used first when the budget is exceeded; a
space larger than the whole budget is not kept (its callers read the database as before).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np


class VectorRowCache:
    """Vectors by space (e.g. ``(kb_id, model_key)``) and id, each with the version it is of; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._spaces: OrderedDict[tuple[str, str], dict[str, tuple[int, np.ndarray]]] = OrderedDict()
        self._bytes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._readers: dict[tuple[str, str], threading.Lock] = {}

    @property
    def size_bytes(self) -> int:
        """The bytes of the vectors held."""
        with self._lock:
            return sum(self._bytes.values())

    def reading(self, space: tuple[str, str]) -> threading.Lock:
        """A lock for the readers of ``space``: held while one reads the database and puts what it read here, so
        that a second reader takes those vectors from memory instead of reading them too."""
        with self._lock:
            return self._readers.setdefault(space, threading.Lock())

    def take(self, space: tuple[str, str], versions: Mapping[str, int], *, complete: bool) -> dict[str, np.ndarray]:
        """The vectors held for the ids of ``versions`` at exactly those versions. Entries of those ids at another
        version are dropped, and when ``versions`` is ``complete`` (every id the space has now) so are the ids it
        lacks (deleted documents)."""
        with self._lock:
            rows = self._spaces.get(space)
            if rows is None:
                return {}
            self._spaces.move_to_end(space)
            found: dict[str, np.ndarray] = {}
            dropped: list[str] = []
            for key, (version, vector) in rows.items():
                wanted = versions.get(key)
                if wanted == version:
                    found[key] = vector
                elif wanted is not None or complete:
                    dropped.append(key)
            for key in dropped:
                self._bytes[space] -= rows.pop(key)[1].nbytes
            return found

    def put(self, space: tuple[str, str], vectors: Mapping[str, tuple[int, np.ndarray]]) -> None:
        """Hold ``vectors`` (id → its version and vector) in ``space``, then evict spaces over the budget."""
        if self.max_bytes <= 0 or not vectors:
            return
        with self._lock:
            rows = self._spaces.setdefault(space, {})
            self._spaces.move_to_end(space)
            total = self._bytes.get(space, 0)
            for key, (version, vector) in vectors.items():
                old = rows.get(key)
                if old is not None:
                    total -= old[1].nbytes
                held = np.array(vector, dtype=np.float32)  # a copy: a view would keep a whole buffer alive
                rows[key] = (version, held)
                total += held.nbytes
            self._bytes[space] = total
            while self._spaces and sum(self._bytes.values()) > self.max_bytes:
                evicted, _ = self._spaces.popitem(last=False)  # least recently used (possibly this one)
                del self._bytes[evicted]

    def clear(self) -> None:
        """Drop every vector held."""
        with self._lock:
            self._spaces.clear()
            self._bytes.clear()
