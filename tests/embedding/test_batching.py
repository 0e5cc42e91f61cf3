"""The micro-batcher with a real model: merging, order, isolation of a failing request, bounded queue."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.embedding.batching import BatchKey, BatchStats, MicroBatcher, estimate_tokens
from zhiku.errors import InputTooLongError, OverloadedError

DOCUMENT = BatchKey("document", None, "end")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return create_embedder(resolve_model("use-multilingual-v3"), Settings(home=tmp_path_factory.mktemp("h")))


def test_concurrent_requests_share_calls_and_get_their_own_rows(embedder) -> None:  # type: ignore[no-untyped-def]
    texts = [f"sentence number {i} " + "word " * (i % 13) for i in range(60)]
    reference = embedder.embed(texts).vectors
    stats: list[BatchStats] = []

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(embedder, max_inputs=16, on_batch=stats.append)
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.embed([t], DOCUMENT) for t in texts))
        finally:
            await batcher.stop()
        return [r.vectors[0] for r in results]

    vectors = asyncio.run(scenario())
    assert np.allclose(np.stack(vectors), reference, atol=1e-5)
    assert sum(s.requests for s in stats) == 60
    assert max(s.inputs for s in stats) <= 16
    assert len(stats) < 60


def test_a_failing_request_fails_alone(embedder) -> None:  # type: ignore[no-untyped-def]
    strict = BatchKey("document", None, "error")

    async def scenario() -> list[object]:
        batcher = MicroBatcher(embedder, max_wait=0.05)
        batcher.start()
        try:
            return await asyncio.gather(
                batcher.embed(["fine"], strict),
                batcher.embed(["word " * 2000], strict),  # over the model's 512 tokens
                batcher.embed(["also fine"], strict),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    good, bad, other = asyncio.run(scenario())
    assert isinstance(bad, InputTooLongError)
    assert not isinstance(good, BaseException)
    assert not isinstance(other, BaseException)


def test_a_full_queue_answers_overloaded(embedder) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> list[object]:
        batcher = MicroBatcher(embedder, max_inputs=4, max_queue=8)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.embed([f"text {i}"] * 4, DOCUMENT) for i in range(10)), return_exceptions=True
            )
        finally:
            await batcher.stop()

    outcomes = asyncio.run(scenario())
    overloaded = [o for o in outcomes if isinstance(o, OverloadedError)]
    assert overloaded
    assert all(o.retry_after > 0 for o in overloaded)
    assert all(not isinstance(o, BaseException) or isinstance(o, OverloadedError) for o in outcomes)


def test_token_estimate_counts_cjk_per_character() -> None:
    assert estimate_tokens("知识库") == 4
    assert estimate_tokens("abcdef") == 3
