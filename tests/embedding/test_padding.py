"""Padding-aware batch plans: every input once, shortest first, and the cheapest cuts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from zhiku.embedding.padding import plan_batches


def plan_cost(lengths: list[int], batches: list[list[int]], call_cost: int) -> int:
    return sum(len(batch) * max(lengths[i] for i in batch) + call_cost for batch in batches)


def test_short_and_long_inputs_are_not_padded_together() -> None:
    lengths = [200, 10, 200, 10, 200, 10, 200, 10, 200, 10]
    batches = plan_batches(lengths, max_size=8, call_cost=64)
    # fixed runs of 8 (five 10s and three 200s) would pad five 10-token inputs to 200
    assert [sorted(lengths[i] for i in batch) for batch in batches] == [[10] * 5, [200] * 5]
    assert sorted(i for batch in batches for i in batch) == list(range(10))


def test_call_cost_trades_padding_for_fewer_calls() -> None:
    lengths = list(range(1, 17))
    assert len(plan_batches(lengths, max_size=8, call_cost=0)) == 16  # padding free: one input per call
    assert len(plan_batches(lengths, max_size=8, call_cost=10_000)) == 2  # calls dear: as full as allowed
    assert plan_batches([], max_size=8) == []
    with pytest.raises(ValueError, match="max_size"):
        plan_batches([1], max_size=0)


@pytest.mark.parametrize("seed", range(5))
def test_plan_is_optimal_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(v) for v in rng.integers(1, 300, size=8)]
    batches = plan_batches(lengths, max_size=3, call_cost=40)
    assert all(len(batch) <= 3 for batch in batches)
    assert sorted(i for batch in batches for i in batch) == list(range(8))
    ordered = sorted(range(8), key=lambda i: lengths[i])
    best = min(
        plan_cost(lengths, [ordered[a:b] for a, b in itertools.pairwise((0, *cuts, 8))], 40)
        for count in range(8)
        for cuts in itertools.combinations(range(1, 8), count)
        if all(b - a <= 3 for a, b in itertools.pairwise((0, *cuts, 8)))
    )
    assert plan_cost(lengths, batches, 40) == best
