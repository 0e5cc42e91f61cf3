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


def test_in_process_limits_start_no_thread_per_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """limits' memory storage starts an expiry thread on nearly every request; zhiku's sweeps inline instead, and
    still forgets what has expired."""
    import threading
    import time

    from zhiku.api.ratelimit import SweptMemoryStorage

    limiter = RateLimiter(Settings(home=tmp_path, rate_limit_read="1000/second"))
    started: list[threading.Thread] = []
    original = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for number in range(200):
        limiter.hit("read", f"key-{number % 3}")
        time.sleep(0.002)  # longer than limits' 10 ms timer over the whole loop
    assert started == []
    storage = limiter._storage
    assert isinstance(storage, SweptMemoryStorage)
    assert len([key for key, entries in storage.events.items() if entries]) == 3
    time.sleep(SweptMemoryStorage.SWEEP_SECONDS + 1.1)  # past the window and the next sweep
    limiter.hit("read", "key-0")
    holding = [key for key, entries in storage.events.items() if entries]
    assert len(holding) == 1  # the others' expired entries are gone
    assert "key-0" in holding[0]
