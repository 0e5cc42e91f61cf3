"""Dynamic micro-batching: concurrent embedding requests share model calls.

Requests wait in a bounded queue. Whenever a model worker is free, the dispatcher takes the oldest request and
every other waiting request with the same settings (input type, instruction, truncation), up to a bound on
inputs and estimated tokens, sorts their texts by length (less padding) and runs one ``embed`` call in a
worker thread, off the event loop. An idle batcher waits ``max_wait`` for company before running a lone
request. A failing batch is re-run request by request, so one bad input only fails its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from zhiku.config import TruncateMode
from zhiku.embedding.base import Embedder, EmbeddingResult, InputType
from zhiku.errors import OverloadedError


@dataclass(frozen=True)
class BatchKey:
    """What requests must share to be embedded in one model call."""

    input_type: InputType
    instruction: str | None
    truncate: TruncateMode


@dataclass(frozen=True)
class BatchStats:
    """One model call, reported to the metrics hook."""

    inputs: int
    requests: int
    estimated_tokens: int
    seconds: float


@dataclass
class _Request:
    key: BatchKey
    texts: list[str]
    future: asyncio.Future[EmbeddingResult]
    cost: int = field(init=False)

    def __post_init__(self) -> None:
        self.cost = sum(estimate_tokens(text) for text in self.texts)


def estimate_tokens(text: str) -> int:
    """A cheap upper-side token estimate for batch sizing (CJK ~1 token per character, Latin ~1 per 3)."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E7F)
    return wide + (len(text) - wide) // 3 + 1


class MicroBatcher:
    """Merges concurrent :meth:`embed` calls for one embedder into few, well-filled model calls."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_inputs: int = 64,
        max_tokens: int = 16384,
        max_wait: float = 0.002,
        max_queue: int = 4096,
        workers: int = 1,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_inputs = max_inputs
        self.max_tokens = max_tokens
        self.max_wait = max_wait
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._workers = workers
        self._pending: deque[_Request] = deque()
        self._queued_inputs = 0
        self._running_batches = 0
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"embed-{embedder.name}")

    @property
    def queued_inputs(self) -> int:
        """Inputs waiting for a model worker."""
        return self._queued_inputs

    def start(self) -> None:
        """Start the dispatcher on the running event loop."""
        if self._dispatcher is None:
            self._wakeup = asyncio.Event()
            self._slots = asyncio.Semaphore(self._workers)
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop dispatching, fail waiting requests, and wait for running model calls."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        while self._pending:
            request = self._pending.popleft()
            if not request.future.done():
                request.future.set_exception(OverloadedError("the server is shutting down"))
        self._queued_inputs = 0
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)

    async def embed(self, texts: list[str], key: BatchKey) -> EmbeddingResult:
        """Embed ``texts`` (at the model's full dimension) together with whatever else is waiting."""
        if self._dispatcher is None or self._wakeup is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self._queued_inputs and self._queued_inputs + len(texts) > self.max_queue:
            raise OverloadedError(
                f"{self._queued_inputs} inputs are waiting for the model (limit {self.max_queue}); retry shortly",
                retry_after=1.0,
            )
        request = _Request(key, texts, asyncio.get_running_loop().create_future())
        self._pending.append(request)
        self._queued_inputs += len(texts)
        self._wakeup.set()
        return await request.future

    async def _dispatch(self) -> None:
        assert self._wakeup is not None
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            await self._slots.acquire()
            if self._running_batches == 0 and self.max_wait > 0 and self._queued_inputs < self.max_inputs:
                await asyncio.sleep(self.max_wait)  # idle: give concurrent requests a moment to join
            batch = self._take_batch()
            if not self._pending:
                self._wakeup.clear()
            if not batch:
                self._slots.release()
                continue
            self._running_batches += 1
            task = loop.run_in_executor(self._pool, self._run, batch)
            task.add_done_callback(functools.partial(self._finish, batch))

    def _take_batch(self) -> list[_Request]:
        """The oldest live request plus compatible waiting ones, within the input and token bounds."""
        batch: list[_Request] = []
        inputs = tokens = 0
        kept: deque[_Request] = deque()
        while self._pending:
            request = self._pending.popleft()
            if request.future.done():  # the client went away
                self._queued_inputs -= len(request.texts)
                continue
            fits = not batch or (
                request.key == batch[0].key
                and inputs + len(request.texts) <= self.max_inputs
                and tokens + request.cost <= self.max_tokens
            )
            if fits:
                batch.append(request)
                inputs += len(request.texts)
                tokens += request.cost
                self._queued_inputs -= len(request.texts)
            else:
                kept.append(request)
                if len(kept) > 4 * self.max_inputs:  # do not scan a huge backlog for compatible requests
                    break
        kept.extend(self._pending)
        self._pending = kept
        return batch

    def _run(self, batch: list[_Request]) -> list[EmbeddingResult | BaseException]:
        """Embed a batch (in a worker thread); on failure, re-run each request alone to isolate the culprit."""
        started = time.perf_counter()
        key = batch[0].key
        texts = [text for request in batch for text in request.texts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        try:
            result = self.embedder.embed(
                [texts[i] for i in order],
                input_type=key.input_type,
                instruction=key.instruction,
                truncate=key.truncate,
            )
        except Exception as exc:  # noqa: BLE001 - reported per request below
            if len(batch) == 1:
                return [exc]
            return [item for request in batch for item in self._run([request])]
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[np.asarray(order)] = np.arange(len(order))
        outcomes: list[EmbeddingResult | BaseException] = []
        start = 0
        for request in batch:
            rows = inverse[start : start + len(request.texts)]
            start += len(request.texts)
            outcomes.append(
                EmbeddingResult(
                    vectors=result.vectors[rows],
                    token_counts=[result.token_counts[i] for i in rows],
                    truncated=[result.truncated[i] for i in rows],
                    windows=[result.windows[i] for i in rows],
                    model=result.model,
                    dimension=result.dimension,
                )
            )
        if self.on_batch is not None:
            estimated = sum(request.cost for request in batch)
            self.on_batch(BatchStats(len(texts), len(batch), estimated, time.perf_counter() - started))
        return outcomes

    def _finish(self, batch: list[_Request], done: asyncio.Future[list[EmbeddingResult | BaseException]]) -> None:
        """Back on the event loop: hand each request its outcome and free the worker slot."""
        assert self._slots is not None
        self._running_batches -= 1
        self._slots.release()
        try:
            outcomes = done.result()
        except BaseException as exc:  # noqa: BLE001 - the worker itself failed; every request learns why
            outcomes = [exc] * len(batch)
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.future.done():
                continue
            if isinstance(outcome, BaseException):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)
