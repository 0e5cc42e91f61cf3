"""Issue #17, item 4: an API caller cannot bind a knowledge base to an arbitrary folder of the server, nor learn
through model names which paths exist.

On a real `zhiku serve` with one allowed model folder (setting `model_folders`), API callers may name registry
models, the server's own model, and model folders under the allowed folder (absolute or relative). Every other
string, whether it names an existing folder, a real model elsewhere, a file, a way out of the allowed folder
(``..``, a symbolic link) or nothing at all, gets the same 404 ``model_not_found`` from knowledge-base creation,
re-indexing and `/v1/embeddings`: the messages differ only by the echoed name. The CLI, run by the operator, still
takes any local model folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import zhiku_server

ADMIN = "models-admin-key-0123456789abcdef0123456789abcdef"
ZHIKU = str(Path(sys.executable).parent / "zhiku")
TALLY: Counter[str] = Counter()


@dataclass
class Setup:
    url: str
    home: Path
    allowed: Path
    outside_model: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3: Path) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("models")
    allowed = workdir / "allowed-models"
    shutil.copytree(tiny_qwen3, allowed / "tiny")
    (allowed / "empty").mkdir()
    (allowed / "broken").mkdir()
    (allowed / "broken" / "config.json").write_text("{not json")
    (allowed / "no-size").mkdir()
    (allowed / "no-size" / "config.json").write_text('{"model_type": "bert"}')
    (allowed / "link-out").symlink_to(tiny_qwen3)  # a real model, but outside the allowed folder
    (allowed / "link-etc").symlink_to("/etc")
    settings = {"auth": "on", "admin_api_key": ADMIN, "model_folders": str(allowed),
                "rate_limit_read": "100000/minute", "rate_limit_write": "100000/minute",
                "rate_limit_embed": "100000/minute"}  # fmt: skip
    with zhiku_server(workdir, **settings) as (url, _):
        yield Setup(url, workdir / "home", allowed, tiny_qwen3)
    print(f"\nmodels: {dict(TALLY)}")


def refused_models(setup: Setup) -> list[str]:
    """Model strings an API caller may not use: existing and missing paths, real models outside the allowed
    folder, files, escapes from the allowed folder, and names that are no model at all."""
    allowed, home = setup.allowed, setup.home
    return [
        "/etc", "/etc/", "/", "/tmp", "/usr", "/usr/lib", "/proc/self", "/proc/self/cwd", "/dev", "/root", "~",
        "~root", ".", "..", "src", "tests", str(home), str(home / "blobs"), str(setup.outside_model),
        str(setup.outside_model) + "/", str(setup.outside_model / "config.json"), "/etc/passwd", "/etc/hostname",
        "/nonexistent", "/etc/nonexistent", "/nonexistent/deeper/still", "nope", "models/nope", "C:\\Windows",
        str(allowed), str(allowed) + "/", str(allowed / "."), str(allowed / ".." / allowed.name / ".."),
        str(allowed / "tiny" / ".." / ".."), str(allowed / "tiny" / "config.json"), str(allowed / "missing"),
        str(allowed / "empty"), str(allowed / "broken"), str(allowed / "no-size"), str(allowed / "link-out"),
        str(allowed / "link-etc"), "link-out", "link-etc", "empty", "broken", "no-size", "missing", "../",
        "../" + allowed.name + "/tiny/..", "tiny/../..", "tiny/../../" + allowed.name + "/../..",
        "text-embedding-3-small", "bert-base-uncased", "Qwen/Qwen3-Embedding-0.6B-GGUF", "中文模型", "%", "*",
        "/" * 300, "a" * 300, "/" + "x" * 300, "x\x00y", "/etc\x00", "file:///etc", "http://127.0.0.1/model",
    ]  # fmt: skip


def same_shape(message: str, name: str) -> str:
    """The message with the echoed name taken out: what is left must be the same for every refused name."""
    shown = repr(name if len(name) <= 100 else name[:100] + "…")
    assert shown in message, (name, message)
    return message.replace(shown, "<name>")


def test_any_other_model_string_gets_the_same_404_everywhere(setup: Setup) -> None:
    with setup.client() as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "base"}).json()["id"]
        shapes: dict[str, set[str]] = {"create": set(), "reindex": set(), "embeddings": set()}
        for model in refused_models(setup):
            responses = {
                "create": client.post("/api/v1/knowledge-bases", json={"name": "probe", "model": model}),
                "reindex": client.post(f"/api/v1/knowledge-bases/{kb}/reindex", json={"model": model}),
                "embeddings": client.post("/v1/embeddings", json={"input": "x", "model": model}),
            }
            for route, response in responses.items():
                TALLY["tried"] += 1
                TALLY[f"{response.status_code // 100}xx"] += 1
                assert response.status_code == 404, (route, model, response.text)
                error = response.json()["error"]
                assert error["code"] == "model_not_found", (route, model, error)
                assert error["param"] == "model"
                shapes[route].add(same_shape(error["message"], model))
        assert all(len(found) == 1 for found in shapes.values()), shapes  # nothing tells the paths apart
        assert client.get("/api/v1/knowledge-bases/probe").status_code == 404
        jobs = client.get("/api/v1/jobs", params={"knowledge_base_id": kb}).json()
        assert jobs == []  # no re-index was queued


def test_registry_own_and_allowed_models_are_accepted(setup: Setup) -> None:
    tiny = str((setup.allowed / "tiny").resolve())
    with setup.client() as client:
        for name, model, expected in [
            ("registry", "all-minilm-l6-v2", "all-minilm-l6-v2"),
            ("alias", "sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
            ("own", "use-multilingual-v3", "use-multilingual-v3"),
            ("allowed absolute", tiny, tiny),
            ("allowed relative", "tiny", tiny),
            ("allowed dotted", str(setup.allowed / "empty" / ".." / "tiny"), tiny),
        ]:
            created = client.post("/api/v1/knowledge-bases", json={"name": name, "model": model})
            assert created.status_code == 201, (model, created.text)
            assert created.json()["model"] == expected
        base = client.get("/api/v1/knowledge-bases/registry").json()["id"]
        reindexed = client.post(f"/api/v1/knowledge-bases/{base}/reindex", json={"model": "tiny", "dimension": 32})
        assert reindexed.status_code == 202, reindexed.text
        assert reindexed.json()["kind"] == "reindex_kb"
        own = client.get("/api/v1/knowledge-bases/allowed absolute").json()["id"]
        again = client.post(f"/api/v1/knowledge-bases/{own}/reindex", json={"model": tiny})  # its own model
        assert again.status_code == 202, again.text
        served = client.post("/v1/embeddings", json={"input": "x", "model": "use-multilingual-v3"})
        assert served.status_code == 200


def test_the_operator_cli_still_takes_any_local_model_folder(setup: Setup, tmp_path: Path) -> None:
    env = {**os.environ, "ZHIKU_HOME": str(tmp_path / "home"), "COLUMNS": "300"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        TALLY["tried"] += 1
        return subprocess.run([ZHIKU, *args], env=env, capture_output=True, text=True, timeout=300, check=False)

    created = run("kb", "create", "local", "--model", str(setup.outside_model))
    assert created.returncode == 0, created.stderr
    assert str(setup.outside_model.resolve()) in created.stdout
    for model in ("/etc", "/nonexistent", "/" + "x" * 300, str(setup.allowed / "broken")):
        refused = run("kb", "create", "bad", "--model", model)
        assert refused.returncode == 2, (model, refused.stdout, refused.stderr)
        assert "error:" in refused.stderr
        assert "Traceback" not in refused.stderr
