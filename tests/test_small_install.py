"""The default install, without PyTorch, for real: a venv of its own (``./scripts/test`` makes it at
``.venv-small``, ``ZHIKU_SMALL_VENV``) holding zhiku and its declared dependencies only. It serves the API and the
web UI, ingests and searches with the default model; a feature that needs PyTorch says which extra to add."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.servers import zhiku_server

ROOT = Path(__file__).resolve().parents[1]
SMALL_VENV = Path(os.environ.get("ZHIKU_SMALL_VENV", ROOT / ".venv-small"))
EXTRA = "pip install 'zhiku[torch]'"


@pytest.fixture(scope="module")
def small_bin() -> Path:
    """The ``bin`` folder of the default-install venv."""
    require(
        (SMALL_VENV / "bin" / "zhiku").is_file(), f"no default-install venv at {SMALL_VENV} (./scripts/test makes it)"
    )
    return SMALL_VENV / "bin"


def _zhiku(small_bin: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIKU_")}
    env.update({"ZHIKU_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "250"})
    return subprocess.run(
        [str(small_bin / "zhiku"), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _wait_for(client: httpx.Client, kb_id: str, count: int) -> list[dict[str, str]]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        listed: list[dict[str, str]] = client.get(f"/api/v1/knowledge-bases/{kb_id}/documents").json()
        if len(listed) == count and all(d["status"] in ("ready", "failed") for d in listed):
            return listed
        time.sleep(0.3)
    raise AssertionError(f"documents not finished: {listed}")


def test_the_default_install_serves_without_pytorch(small_bin: Path, tmp_path: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('sentence_transformers'))"
    probe = subprocess.run([str(small_bin / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None None", "the default install must not bring PyTorch"

    env = {k: v for k, v in os.environ.items() if k.startswith("ZHIKU_")}
    for name in env:  # the test run's own settings are not the default install's
        os.environ.pop(name)
    try:
        with zhiku_server(tmp_path, bin_dir=small_bin) as (url, _), httpx.Client(base_url=url, timeout=120) as client:
            assert client.get("/").status_code == 200  # the web UI
            kb = client.post("/api/v1/knowledge-bases", json={"name": "notes"}).json()
            files = [("files", ("panda.md", "# 大熊猫\n\n大熊猫主要吃竹子。".encode(), "text/markdown")),
                     ("files", ("tea.md", b"# Tea\n\nGreen tea is not fermented.", "text/markdown"))]  # fmt: skip
            assert client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents", files=files).status_code == 201
            assert {d["status"] for d in _wait_for(client, kb["id"], 2)} == {"ready"}
            found = client.post(f"/api/v1/knowledge-bases/{kb['id']}/search", json={"query": "熊猫吃什么"}).json()
            assert found["hits"][0]["filename"] == "panda.md"
            embedded = client.post("/v1/embeddings", json={"model": "use-multilingual-v3", "input": "你好"})
            assert embedded.status_code == 200
            assert len(embedded.json()["data"][0]["embedding"]) == 512

            # a model that needs PyTorch: its documents fail with the extra to add, the server stays up
            mini = client.post("/api/v1/knowledge-bases", json={"name": "mini", "model": "all-minilm-l6-v2"}).json()
            client.post(f"/api/v1/knowledge-bases/{mini['id']}/documents", files=files[:1])
            (failed,) = _wait_for(client, mini["id"], 1)
            assert failed["status"] == "failed"
            assert EXTRA in failed["error"]
            assert client.get("/readyz").status_code == 200
    finally:
        os.environ.update(env)

    # the CLI beside it: a reranker needs PyTorch, said in one line with the extra
    home = tmp_path / "home"
    reranked = _zhiku(small_bin, home, "search", "熊猫", "--kb", "notes", "--rerank", "qwen3-reranker-0.6b")
    assert reranked.returncode == 2, reranked.stdout
    assert "Traceback" not in reranked.stderr
    assert EXTRA in reranked.stderr
    listed = _zhiku(small_bin, home, "docs", "list", "--kb", "mini")
    assert listed.returncode == 0, listed.stderr
    assert "zhiku[torch]" in listed.stdout.replace("\n", "")  # the error is text, not rich markup
