"""Rate limits: per identity and route class, in-process, and shared through Redis between processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.conftest import require
from zhiku.api.ratelimit import RateLimitedError, RateLimiter
from zhiku.config import Settings
from zhiku.errors import ConfigError


def test_in_process_limits_per_identity_and_class(tmp_path: Path) -> None:
    limiter = RateLimiter(Settings(home=tmp_path, rate_limit_write="3/minute"))
    for _ in range(3):
        limiter.hit("write", "a")
    with pytest.raises(RateLimitedError) as raised:
        limiter.hit("write", "a")
    assert 1 <= raised.value.retry_after <= 60
    assert raised.value.status_code == 429
    limiter.hit("write", "b")  # another key has its own budget
    limiter.hit("read", "a")  # another route class too


def test_redis_limits_are_shared_between_instances(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/15").ping()
    except redis.RedisError:
        require(False, "Redis not reachable at 127.0.0.1:6379")
    settings = Settings(home=tmp_path, rate_limit_write="4/minute", redis_url="redis://127.0.0.1:6379/15")
    one, two = RateLimiter(settings), RateLimiter(settings)  # e.g. two API processes
    identity = uuid.uuid4().hex
    one.hit("write", identity)
    two.hit("write", identity)
    one.hit("write", identity)
    two.hit("write", identity)
    with pytest.raises(RateLimitedError):
        one.hit("write", identity)


def test_unreadable_limits_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rate_limit_chat"):
        RateLimiter(Settings(home=tmp_path, rate_limit_chat="lots"))
