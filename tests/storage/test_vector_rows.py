"""The in-memory copy of document vectors: only exact versions come back, the budget holds, nothing is shared by
reference with the caller."""

from __future__ import annotations

import numpy as np

from zhiku.storage.vector_rows import VectorRowCache

KB = ("kb-1", "model|4")


def vector(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


def test_only_the_asked_versions_come_back_and_older_or_gone_ones_are_dropped() -> None:
    cache = VectorRowCache(1 << 20)
    cache.put(KB, {"a": (1, vector(1)), "b": (1, vector(2)), "c": (3, vector(3))})
    assert cache.size_bytes == 3 * 16

    found = cache.take(KB, {"a": 1, "b": 2, "d": 1}, complete=False)  # b has a new version, d was never read
    assert list(found) == ["a"]
    assert found["a"].tolist() == [1.0] * 4
    assert cache.size_bytes == 2 * 16  # b's old version went; c stays (a partial ask says nothing of it)

    assert list(cache.take(KB, {"a": 1}, complete=True)) == ["a"]  # c is gone from the knowledge base
    assert cache.size_bytes == 16
    assert cache.take(("kb-1", "other|4"), {"a": 1}, complete=True) == {}  # another model is another space
    assert cache.take(("kb-2", "model|4"), {"a": 1}, complete=True) == {}


def test_the_held_copy_is_not_the_callers_buffer() -> None:
    cache = VectorRowCache(1 << 20)
    buffer = bytearray(np.arange(4, dtype="<f4").tobytes())
    cache.put(KB, {"a": (1, np.frombuffer(buffer, dtype="<f4"))})
    buffer[:4] = np.float32(99).tobytes()
    assert cache.take(KB, {"a": 1}, complete=True)["a"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_the_budget_evicts_the_least_recently_used_space_and_zero_keeps_nothing() -> None:
    cache = VectorRowCache(10 * 16)
    cache.put(("kb-1", "m"), {str(i): (1, vector(i)) for i in range(6)})
    cache.put(("kb-2", "m"), {str(i): (1, vector(i)) for i in range(4)})
    assert cache.size_bytes == 10 * 16
    cache.take(("kb-1", "m"), {"0": 1}, complete=False)  # kb-1 used last
    cache.put(("kb-3", "m"), {"x": (1, vector(9))})
    assert cache.take(("kb-2", "m"), {"0": 1}, complete=False) == {}  # evicted
    assert list(cache.take(("kb-1", "m"), {"0": 1}, complete=False)) == ["0"]

    cache.put(("kb-4", "m"), {str(i): (1, vector(i)) for i in range(20)})  # larger than the whole budget
    assert cache.size_bytes <= 10 * 16

    off = VectorRowCache(0)
    off.put(KB, {"a": (1, vector(1))})
    assert off.size_bytes == 0
    assert off.take(KB, {"a": 1}, complete=True) == {}
