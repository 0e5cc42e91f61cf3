"""The knowledge-service tests' zhiku: the real stack on each storage set-up (tests/conftest.py ``storage``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zhiku.config import Settings
from zhiku.core import Zhiku


@pytest.fixture
def zhiku(tmp_path: Path, storage: dict[str, Any]) -> Iterator[Zhiku]:
    """A ``Zhiku`` on SQLite + Qdrant Edge, PostgreSQL + Qdrant Edge, or PostgreSQL + pgvector."""
    app = Zhiku(Settings(home=tmp_path / "home", job_retry_backoff=0.05, **storage))
    yield app
    app.close()
