"""Rate limits per API key and route class with the ``limits`` library: in-process, or Redis when configured."""

from __future__ import annotations

import math
import threading
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from zhiku.config import Settings
from zhiku.errors import ConfigError, ZhikuError

ROUTE_CLASSES = ("read", "write", "embed", "chat", "login", "login_account")


class RateLimitedError(ZhikuError):
    """Too many requests for this key (or login) and route class."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Moving-window limits per (route class, identity)."""

    def __init__(self, settings: Settings) -> None:
        self._storage = storage_from_string(settings.redis_url) if settings.redis_url else SweptMemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._limits: dict[str, RateLimitItem] = {}
        for route_class in ROUTE_CLASSES:
            text = getattr(settings, f"rate_limit_{route_class}")
            try:
                self._limits[route_class] = parse(text)
            except ValueError as exc:
                raise ConfigError(f"rate_limit_{route_class}: cannot read {text!r} ({exc})") from exc

    def hit(self, route_class: str, identity: str) -> None:
        """Count one request; raise :class:`RateLimitedError` (with the seconds to wait) when over the limit."""
        limit = self._limits[route_class]
        if self._limiter.hit(limit, route_class, identity):
            return
        reset, _ = self._limiter.get_window_stats(limit, route_class, identity)
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimitedError(
            f"rate limit of {limit} for {route_class} requests exceeded; retry in {wait} s", retry_after=wait
        )


class SweptMemoryStorage(MemoryStorage):
    """limits' in-process storage, its expired entries dropped at most once a second by the request that comes
    along, instead of by a ``threading.Timer`` that limits starts afresh on nearly every request: the event loop
    waited for each new thread to start, which first has to win the GIL from a busy search (a tenth of the event
    loop's time in a profile of ``zhiku bench serve-search``)."""

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._swept = time.monotonic()
        self._sweeping = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - replaces limits' (name-mangled) per-request timer
        now = time.monotonic()
        if now - self._swept < self.SWEEP_SECONDS or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._swept = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]  # limits' own expiry, run here
        finally:
            self._sweeping.release()
