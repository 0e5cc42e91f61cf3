"""Settings: env vars, zhiku.toml, validation, and the generated reference staying in sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from zhiku.config import Settings, settings_reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path))
    monkeypatch.setenv("ZHIKU_EMBEDDING_MODEL", "qwen3-embedding-4b")
    monkeypatch.setenv("ZHIKU_REMOTE_URLS", "http://a:8000/v1, http://b:8000/v1")
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.embedding_model == "qwen3-embedding-4b"
    assert settings.remote_urls == ["http://a:8000/v1", "http://b:8000/v1"]


def test_toml_file_and_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "zhiku.toml"
    config.write_text('embedding_batch_size = 7\nremote_urls = ["http://x/v1"]\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("ZHIKU_CONFIG", str(config))
    monkeypatch.setenv("ZHIKU_LOG_LEVEL", "ERROR")
    settings = Settings()
    assert settings.embedding_batch_size == 7
    assert settings.remote_urls == ["http://x/v1"]
    assert settings.log_level == "ERROR"  # env beats the file


def test_toml_in_home_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    (tmp_path / "zhiku.toml").write_text("max_input_chars = 1234\n")
    assert Settings().max_input_chars == 1234


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIKU_EMBEDDING_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="embedding_batch_size"):
        Settings()
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(no_such_option=1)  # type: ignore[call-arg]


def test_every_option_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
    assert DOC.read_text(encoding="utf-8") == settings_reference_markdown(), (
        "docs/configuration.md is stale: run `zhiku config --markdown > docs/configuration.md`"
    )
