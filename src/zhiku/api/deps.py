"""Objects the routes share, kept on ``app.state.zhiku`` by the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from zhiku.api.keycache import KeyCache
from zhiku.api.metrics import Metrics
from zhiku.api.notices import OncePerClient
from zhiku.api.streams import StreamSlots
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.embedding.service import EmbeddingService
from zhiku.keys import Principal

if TYPE_CHECKING:
    from zhiku.api.ratelimit import RateLimiter
    from zhiku.jobs.runner import JobRunner


@dataclass
class AppState:
    """What one running app holds."""

    settings: Settings
    zhiku: Zhiku
    embeddings: EmbeddingService
    metrics: Metrics
    keys: KeyCache
    limiter: RateLimiter
    runner: JobRunner | None = None
    streams: StreamSlots = field(default_factory=StreamSlots)
    truncation_notices: OncePerClient = field(default_factory=OncePerClient)


def caller_identity(request: Request, principal: Principal) -> str:
    """Whom per-caller rate limits count: the API key, else the logged-in person, else the client address (the
    bootstrap key of the settings, ``auth=off``)."""
    who = principal.key_id or principal.account_id or (request.client.host if request.client else "local")
    return f"{principal.tenant_id}:{who}"


async def app_state(request: Request) -> AppState:
    """FastAPI dependency: the app's :class:`AppState` (``async``: FastAPI would run a plain function in its
    thread pool, one more hand-over between threads for every request)."""
    state: AppState = request.app.state.zhiku
    return state


State = Annotated[AppState, Depends(app_state)]
"""A route parameter: the app's :class:`AppState`."""
