"""Rate limits per API key and route class with the ``limits`` library: in-process, or Redis when configured."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from zhiku.config import Settings
from zhiku.errors import ConfigError, ZhikuError

ROUTE_CLASSES = ("read", "write", "embed", "chat")


class RateLimitedError(ZhikuError):
    """Too many requests for this key and route class."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Moving-window limits per (route class, identity)."""

    def __init__(self, settings: Settings) -> None:
        uri = settings.redis_url or "memory://"
        self._storage = storage_from_string(uri)
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
