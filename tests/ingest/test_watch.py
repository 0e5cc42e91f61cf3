"""Watched folders: `zhiku serve` with the `watch_folders` setting, and `zhiku watch DIR --kb NAME`, keep a
knowledge base in sync with a real folder as files are changed, added and deleted (.gitignore respected)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import zhiku_server

ZHIKU = str(Path(sys.executable).parent / "zhiku")


def zhiku_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "ZHIKU_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("ZHIKU_URL", None)
    return env


def until(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.3)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "handbook"
    (root / "team").mkdir(parents=True)
    (root / "onboarding.md").write_text("# Onboarding\n\nNew colleagues get a laptop on their first day.\n")
    (root / "team" / "rota.txt").write_text("The support rota changes every Monday morning.\n")
    (root / ".gitignore").write_text("*.tmp\n")
    return root


def test_serve_keeps_a_watched_folder_in_sync(tmp_path: Path, folder: Path) -> None:
    home = tmp_path / "server" / "home"
    created = subprocess.run([ZHIKU, "kb", "create", "handbook"], env=zhiku_env(home), capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    assert created.returncode == 0, created.stderr
    settings = {"watch_folders": json.dumps({str(folder): "handbook"}), "watch_debounce_seconds": "0.3"}
    with zhiku_server(tmp_path / "server", **settings) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        kb = client.get("/api/v1/knowledge-bases/handbook").json()["id"]

        def documents() -> dict[str, dict[str, Any]]:
            rows = client.get(f"/api/v1/knowledge-bases/{kb}/documents").json()
            return {row["source"].split(":", 2)[2]: row for row in rows}

        def settled(paths: set[str]) -> Callable[[], dict[str, dict[str, Any]] | None]:
            def check() -> dict[str, dict[str, Any]] | None:
                found = documents()
                ready = set(found) == paths and all(d["status"] == "ready" for d in found.values())
                return found if ready else None

            return check

        first = until("the folder's first sync", settled({"onboarding.md", "team/rota.txt"}))
        sources = client.get(f"/api/v1/knowledge-bases/{kb}/sources").json()
        assert [(s["kind"], s["location"]) for s in sources] == [("folder", str(folder))]

        (folder / "onboarding.md").write_text("# Onboarding\n\nNew colleagues get a laptop and a badge.\n")
        (folder / "team" / "rota.txt").unlink()
        (folder / "scratch.tmp").write_text("ignored by .gitignore\n")
        (folder / "team" / "holidays.md").write_text("# Holidays\n\nBook holidays two weeks ahead.\n")
        after = until("the change, the deletion and the new file", settled({"onboarding.md", "team/holidays.md"}))
        assert after["onboarding.md"]["id"] == first["onboarding.md"]["id"]
        until("a new version of onboarding.md", lambda: documents()["onboarding.md"]["version"] == 2)
        hits = client.post(f"/api/v1/knowledge-bases/{kb}/search", json={"query": "badge", "top_k": 1}).json()
        assert hits["hits"][0]["document_id"] == first["onboarding.md"]["id"]
        synced = client.post(f"/api/v1/knowledge-bases/{kb}/sources/{sources[0]['id']}/sync").json()
        assert synced["job_ids"] == []  # everything is in sync already: nothing read or ingested again
        assert synced["unchanged"] == 2


def test_zhiku_watch_syncs_on_change_until_interrupted(tmp_path: Path, folder: Path) -> None:
    home = tmp_path / "home"
    env = zhiku_env(home)
    assert subprocess.run([ZHIKU, "kb", "create", "notes"], env=env, capture_output=True, timeout=300).returncode == 0
    process = subprocess.Popen([ZHIKU, "watch", str(folder), "--kb", "notes"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []

    def wait_for(text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if process.poll() is not None:
                    break
                continue
            seen.append(line)
            if text in line:
                return line
        pytest.fail(f"no {text!r} from zhiku watch:\n{''.join(seen)}")

    try:
        assert "2 added" in wait_for("synced")
        time.sleep(0.5)
        (folder / "team" / "rota.txt").write_text("The support rota now changes every Tuesday.\n")
        line = wait_for("synced")
        assert "1 changed" in line
        assert "1 unchanged" in line
        (folder / "onboarding.md").unlink()
        assert "1 removed" in wait_for("synced")
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0, "".join(seen)
    listed = subprocess.run([ZHIKU, "docs", "list", "--kb", "notes"], env=env, capture_output=True, text=True,
                            timeout=300, check=True)  # fmt: skip
    assert "rota.txt" in listed.stdout
    assert "onboarding.md" not in listed.stdout
