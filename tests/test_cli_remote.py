"""The CLI beside a running server: a real `zhiku serve` (auth on) and real `zhiku` processes on the same home.

The commands that read or write knowledge bases go through the server's API (found through
``$ZHIKU_HOME/server.json``, or ``ZHIKU_URL``), print what they print embedded, and fail with one line."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, zhiku_server

ZHIKU = str(Path(sys.executable).parent / "zhiku")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIKU_") or k == "ZHIKU_STRICT"}
    env.update({"ZHIKU_HOME": str(home), "ZHIKU_EMBEDDING_BACKEND": "torch", "HF_HUB_OFFLINE": "1", "COLUMNS": "250"})
    env.update(extra)
    return env


def run(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``zhiku ARGS`` as a user runs it, on ``home``; ``extra``: more environment variables."""
    return subprocess.run(
        [ZHIKU, *args], env=_env(home, **extra), capture_output=True, text=True, timeout=600, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's stderr, checked to be one ``error:`` line and no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def make_docs(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "guide.md").write_text(
        "# 安装指南\n\n运行 `pip install zhiku` 即可安装。然后执行 zhiku serve。\n", "utf-8"
    )
    (folder / "sub" / "notes.txt").write_text("Meeting notes: ship the release on Friday.\n", "utf-8")
    (folder / "sub" / "copy.txt").write_text("Meeting notes: ship the release on Friday.\n", "utf-8")
    (folder / "sub" / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (folder / "ignored.log").write_text("log")
    (folder / ".gitignore").write_text("*.log\n")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One `zhiku serve` with auth on for the module; yields its URL and its home."""
    workdir = tmp_path_factory.mktemp("cli-remote")
    with zhiku_server(workdir, auth="on", embedding_backend="torch") as (url, _):
        yield url, workdir / "home"


def _outcomes(stdout: str) -> dict[str, str]:
    """File name -> status of the ingestion table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 3 and cells[1] and cells[1] != "file":
            rows[cells[1]] = cells[2]
    return rows


def test_server_records_itself_for_the_cli(server: tuple[str, Path]) -> None:
    url, home = server
    record_file = home / "server.json"
    assert stat.S_IMODE(record_file.stat().st_mode) == 0o600
    record = json.loads(record_file.read_text())
    assert record["url"] == url
    assert record["key"].startswith("zk-")
    answer = httpx.get(f"{url}/api/v1/knowledge-bases", headers={"authorization": f"Bearer {record['key']}"})
    assert answer.status_code == 200
    assert httpx.get(f"{url}/api/v1/knowledge-bases").status_code == 401  # auth is on


def test_first_start_prints_the_first_admin_login_once(server: tuple[str, Path]) -> None:
    url, home = server
    log = (home.parent / "zhiku-serve.log").read_text()
    found = re.search(r"login: admin\n\s+password: (\S+)", log)
    assert found, log[-2000:]
    assert log.count("login: admin") == 1
    browser = httpx.Client(base_url=url)
    answer = browser.post("/api/v1/auth/login", json={"login": "admin", "password": found.group(1)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["account"]["role"] == "admin"
    assert browser.get("/api/v1/accounts").status_code == 200


def test_cli_beside_server_goes_through_its_api(server: tuple[str, Path], tmp_path: Path) -> None:
    url, home = server
    docs = make_docs(tmp_path / "docs")
    key = json.loads((home / "server.json").read_text())["key"]
    api = httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"})

    created = run(home, "kb", "create", "团队手册", "--chunk-tokens", "64", "--overlap", "8")
    assert created.returncode == 0, created.stderr
    assert "use-multilingual-v3, 512 dims, chunks of 64 tokens (overlap 8)" in created.stdout
    assert "already exists" in one_line_error(run(home, "kb", "create", "团队手册"))

    ingested = run(home, "ingest", str(docs), "--kb", "团队手册", "--tag", "handbook")
    assert ingested.returncode == 0, ingested.stderr
    assert "Traceback" not in ingested.stderr
    assert _outcomes(ingested.stdout) == {
        "guide.md": "ready",
        "broken.pdf": "failed",
        "copy.txt": "ready",
        "notes.txt": "duplicate",
    }
    assert "1 duplicate, 1 failed, 2 ready" in ingested.stdout
    # the server holds every document once, ingested by its own workers
    kb_id = api.get("/api/v1/knowledge-bases/团队手册").json()["id"]
    stored = api.get(f"/api/v1/knowledge-bases/{kb_id}/documents").json()
    assert sorted(d["filename"] for d in stored) == ["copy.txt", "guide.md", "notes.txt"]
    assert all(d["tags"] == ["handbook"] for d in stored)

    again = run(home, "ingest", str(docs), "--kb", "团队手册")
    assert again.returncode == 0, again.stderr
    assert _outcomes(again.stdout)["guide.md"] == "unchanged"
    assert len(api.get(f"/api/v1/knowledge-bases/{kb_id}/documents").json()) == 3

    listed = run(home, "kb", "list")
    assert "团队手册" in listed.stdout
    assert "ready: 2" in run(home, "kb", "show", "团队手册").stdout
    documents = run(home, "docs", "list", "--kb", "团队手册")
    assert documents.returncode == 0, documents.stderr
    assert documents.stdout.count("ready") == 2
    jobs = run(home, "jobs", "list")
    assert jobs.returncode == 0, jobs.stderr
    assert "guide.md" in jobs.stdout
    assert "succeeded" in jobs.stdout
    job_id = next(line.split()[1] for line in jobs.stdout.splitlines() if "guide.md" in line)
    shown = run(home, "jobs", "show", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "ingest_document" in shown.stdout

    found = run(home, "search", "如何安装", "--kb", "团队手册")
    assert found.returncode == 0, found.stderr
    assert "guide.md" in found.stdout
    as_json = run(home, "search", "release Friday", "--kb", "团队手册", "--mode", "lexical", "--json")
    hits = json.loads(as_json.stdout)
    assert hits[0]["filename"] in {"notes.txt", "copy.txt"}
    assert "<mark>release</mark>" in hits[0]["highlighted"]
    assert {"page_start", "char_start", "scores", "text"} <= set(hits[0])

    guide = next(d for d in stored if d["filename"] == "guide.md")
    labelled = run(home, "docs", "label", guide["id"][:8], "--kb", "团队手册", "--meta", "team=hr")
    assert labelled.returncode == 0, labelled.stderr
    assert "guide.md: tags [handbook], metadata {team=hr}" in labelled.stdout

    later = tmp_path / "later"
    later.mkdir()
    (later / "faq.txt").write_text("FAQ: refunds take five working days.\n", "utf-8")
    queued = run(home, "ingest", str(later), "--kb", "团队手册", "--no-wait")
    assert queued.returncode == 0, queued.stderr
    assert _outcomes(queued.stdout) == {"faq.txt": "queued"}
    explicit = run(home, "jobs", "list", "--status", "failed", ZHIKU_URL=url, ZHIKU_API_KEY=key)
    assert explicit.returncode == 0, explicit.stderr
    assert "succeeded" not in explicit.stdout

    # failures: one line each, the same codes as embedded
    assert "no knowledge base named 'nope'" in one_line_error(run(home, "ingest", str(docs), "--kb", "nope"))
    assert "no knowledge base named 'nope'" in one_line_error(run(home, "search", "x", "--kb", "nope"))
    assert "no knowledge base named 'nope'" in one_line_error(run(home, "docs", "list", "--kb", "nope"))
    assert "mode must be" in one_line_error(run(home, "search", "x", "--kb", "团队手册", "--mode", "fuzzy"))
    assert "no job" in one_line_error(run(home, "jobs", "show", "abcdef99"))

    deleted = run(home, "kb", "delete", "团队手册", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert api.get("/api/v1/knowledge-bases").json() == []
    log = (home.parent / "zhiku-serve.log").read_text(errors="replace")
    assert "WouldBlock" not in log


def test_stale_record_is_ignored_and_embedded_output_is_the_same(tmp_path: Path) -> None:
    """A ``server.json`` left by a killed server: the CLI runs embedded, and prints what it prints remotely."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"url": f"http://127.0.0.1:{free_port()}", "pid": gone.pid, "key": "zk-stale", "key_id": None}
    (home / "server.json").write_text(json.dumps(record))
    docs = make_docs(tmp_path / "docs")

    created = run(home, "kb", "create", "团队手册", "--chunk-tokens", "64", "--overlap", "8")
    assert created.returncode == 0, created.stderr
    assert "use-multilingual-v3, 512 dims, chunks of 64 tokens (overlap 8)" in created.stdout
    ingested = run(home, "ingest", str(docs), "--kb", "团队手册")
    assert ingested.returncode == 0, ingested.stderr
    assert _outcomes(ingested.stdout) == {
        "guide.md": "ready",
        "broken.pdf": "failed",
        "copy.txt": "ready",
        "notes.txt": "duplicate",
    }
    assert "1 duplicate, 1 failed, 2 ready" in ingested.stdout
    found = run(home, "search", "如何安装", "--kb", "团队手册")
    assert found.returncode == 0, found.stderr
    assert "guide.md" in found.stdout
    assert "no knowledge base named 'nope'" in one_line_error(run(home, "search", "x", "--kb", "nope"))


def test_zhiku_url_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (("kb", "list"), ("search", "x", "--kb", "any"), ("ingest", str(tmp_path), "--kb", "any")):
        line = one_line_error(run(tmp_path / "home", *args, ZHIKU_URL=dead))
        assert f"cannot reach the zhiku server at {dead}" in line
        assert "unset ZHIKU_URL" in line


def test_zhiku_url_with_a_wrong_key_is_one_line(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    line = one_line_error(run(tmp_path / "home", "kb", "list", ZHIKU_URL=url, ZHIKU_API_KEY="zk-wrong"))
    assert "refused the API key" in line
    assert "ZHIKU_API_KEY" in line
    missing = one_line_error(run(tmp_path / "home", "jobs", "list", ZHIKU_URL=url))
    assert "needs an API key: set ZHIKU_API_KEY" in missing


def test_server_stopping_mid_ingest_is_one_line_and_cleans_up(tmp_path: Path) -> None:
    many = tmp_path / "many"
    many.mkdir()
    words = ["alpha", "beta", "gamma", "delta", "zeta", "theta", "iota", "kappa"]
    for i in range(30):
        many.joinpath(f"f{i}.txt").write_text(" ".join(words[(i * j) % 8] for j in range(4000)))
    with zhiku_server(tmp_path, auth="on", embedding_backend="torch") as (url, pid):
        home = tmp_path / "home"
        assert run(home, "kb", "create", "big").returncode == 0
        key = json.loads((home / "server.json").read_text())["key"]
        with subprocess.Popen(
            [ZHIKU, "ingest", str(many), "--kb", "big"],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as cli:
            headers = {"authorization": f"Bearer {key}"}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and cli.poll() is None:
                listed = httpx.get(f"{url}/api/v1/knowledge-bases/big", headers=headers).json()
                if sum(listed["documents"].values()) >= 5:
                    break
                time.sleep(0.2)
            os.kill(pid, 15)
            stdout, stderr = cli.communicate(timeout=120)
    assert "Traceback" not in stderr
    if cli.returncode != 0:  # stopped before the command ended (the usual case)
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, stderr
        assert "zhiku server" in errors[0]
        assert cli.returncode == 2
    else:
        assert "ingestion" in stdout
    assert not (home / "server.json").exists()  # the server deleted its record and revoked the key
    gone = run(home, "kb", "list")  # embedded now: the same home, no server
    assert gone.returncode == 0, gone.stderr
    assert "big" in gone.stdout


def test_the_recorded_url_is_the_local_one() -> None:
    from zhiku.cli.main import _local_url

    assert _local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert _local_url("::", 8000) == "http://[::1]:8000"
    assert _local_url("127.0.0.1", 9000) == "http://127.0.0.1:9000"
    assert _local_url("fe80::1", 80) == "http://[fe80::1]:80"
    assert _local_url("localhost", 8000) == "http://localhost:8000"
