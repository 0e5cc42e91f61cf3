"""A cap on the live event streams (Server-Sent Events) one API key holds open on one server process.

Every open stream polls the job rows a few times a second; 400 streams of one client made a 20 ms search take
1.3 s. Beyond ``max_event_streams_per_key`` a new stream is refused with 429 (OpenAI error shape,
``Retry-After``) until one of the key's streams closes. The slot is taken and given back inside the response
itself, so a stream that ends, fails or loses its client always frees it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable
from typing import Any

from fastapi import Request
from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

from zhiku.api.errors import error_response
from zhiku.errors import ZhikuError
from zhiku.keys import Principal

RETRY_AFTER_SECONDS = 5.0
PING_SECONDS = 15


class TooManyStreamsError(ZhikuError):
    """This key already holds the most live event streams allowed."""

    status_code = 429
    code = "too_many_event_streams"

    def __init__(self, message: str, *, retry_after: float = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamSlots:
    """Open streams per identity (``tenant:key``), counted on the event loop (no lock needed)."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def acquire(self, identity: str, limit: int) -> None:
        """Take a slot or raise :class:`TooManyStreamsError`."""
        held = self._open.get(identity, 0)
        if held >= limit:
            raise TooManyStreamsError(
                f"this API key already has {held} live event streams open (setting max_event_streams_per_key); "
                "close one (or follow several jobs with one knowledge-base stream) and retry"
            )
        self._open[identity] = held + 1

    def release(self, identity: str) -> None:
        """Give a slot back."""
        held = self._open.get(identity, 0) - 1
        if held > 0:
            self._open[identity] = held
        else:
            self._open.pop(identity, None)

    def held(self, identity: str) -> int:
        """Streams ``identity`` has open now."""
        return self._open.get(identity, 0)


def stream_identity(request: Request, principal: Principal) -> str:
    """Whose streams these are: the API key, else the person, else the client address (auth off)."""
    who = principal.key_id or principal.account_id or (request.client.host if request.client else "local")
    return f"{principal.tenant_id}:{who}"


class LimitedEventStream(EventSourceResponse):
    """An :class:`EventSourceResponse` that holds one of its key's stream slots while it runs (429 if none)."""

    def __init__(self, content: AsyncIterable[Any], *, slots: StreamSlots, limit: int, identity: str) -> None:
        super().__init__(content, ping=PING_SECONDS)
        self._slots = slots
        self._limit = limit
        self._identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slots = self._slots
        try:
            slots.acquire(self._identity, self._limit)
        except TooManyStreamsError as exc:
            headers = {"Retry-After": str(math.ceil(exc.retry_after))}
            await error_response(exc.status_code, exc.message, code=exc.code, headers=headers)(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            slots.release(self._identity)
