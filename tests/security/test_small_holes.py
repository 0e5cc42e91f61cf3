"""Issue #17, item 8: the smaller holes, each checked on a real `zhiku serve` (or the real CLI) where it can be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from zhiku.config import Settings

ZHIKU = str(Path(sys.executable).parent / "zhiku")
ADMIN = "small-holes-admin-key-0123456789abcdef01234"


def test_a_short_admin_key_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="admin_api_key"):
        Settings(admin_api_key="x" * 31)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(admin_api_key="change-me-to-at-least-32-random-characters")  # type: ignore[arg-type]
    assert Settings(admin_api_key="x" * 32).admin_api_key is not None  # type: ignore[arg-type]
    env = {**os.environ, "ZHIKU_HOME": str(tmp_path / "home"), "ZHIKU_ADMIN_API_KEY": "too-short-key", "COLUMNS": "200"}
    done = subprocess.run([ZHIKU, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "ZHIKU_ADMIN_API_KEY (admin_api_key): must be at least 32 characters, got 13" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists()  # refused before anything was created or served
