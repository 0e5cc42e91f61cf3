"""kill -9 in the middle of `zhiku ingest`, restart: every document ready exactly once, same chunks as a clean run."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import get_knowledge_base

ZHIKU = str(Path(sys.executable).parent / "zhiku")
TOPICS = ["rivers", "bridges", "gardens", "trains", "libraries", "markets", "harbours", "mountains", "bakeries"]
CN = ["河流", "桥梁", "花园", "火车", "图书馆", "市场", "港口", "山脉", "面包店"]


def generate(folder: Path, count: int) -> None:
    rng = random.Random(7)  # noqa: S311 - test data
    folder.mkdir()
    for i in range(count):
        topic = rng.randrange(len(TOPICS))
        paragraphs = [
            f"# Note {i} about {TOPICS[topic]}",
            " ".join(
                f"Fact {i}.{j}: the {TOPICS[(topic + j) % 9]} of town {rng.randint(1, 999)} "
                f"opened in {rng.randint(1800, 2020)}."
                for j in range(6)
            ),
            "".join(
                f"第{i}号笔记：{CN[(topic + j) % 9]}在{rng.randint(1, 99)}号镇，建于{rng.randint(1800, 2020)}年。"
                for j in range(5)
            ),
        ]
        (folder / f"note-{i:03d}.md").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


def zhiku_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIKU_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "ZHIKU_JOB_HEARTBEAT_SECONDS": "0.5",
        "ZHIKU_JOB_STALE_SECONDS": "3",
    }


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [ZHIKU, *args], env=zhiku_env(home), capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ready_count(home: Path) -> int:
    db = home / "zhiku.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as connection:
        try:
            return int(connection.execute("select count(*) from documents where status='ready'").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def summary(home: Path) -> tuple[int, int, int, int, int]:
    """(documents, ready, distinct sources, chunk rows of active versions, vectors)."""
    with sqlite3.connect(home / "zhiku.db") as connection:
        documents, ready, sources = connection.execute(
            "select count(*), sum(status='ready'), count(distinct source) from documents"
        ).fetchone()
        chunks = connection.execute(
            "select count(*) from chunks c join documents d on c.document_id = d.id where c.version = d.version"
        ).fetchone()[0]
        stray = connection.execute(
            "select count(*) from chunks c join documents d on c.document_id = d.id where c.version != d.version"
        ).fetchone()[0]
    assert stray == 0
    app = Zhiku(Settings(home=home))
    try:
        vectors = app.vectors.count(get_knowledge_base(app, "kb").collection)
    finally:
        app.close()
    return documents, ready, sources, chunks, vectors


def test_kill_9_mid_ingestion_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    generate(docs, 200)
    crash, clean = tmp_path / "crash", tmp_path / "clean"
    for home in (crash, clean):
        cli(home, "kb", "create", "kb", "--chunk-tokens", "48", "--overlap", "0")

    process = subprocess.Popen(
        [ZHIKU, "ingest", str(docs), "--kb", "kb"], env=zhiku_env(crash),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while ready_count(crash) < 40 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "ingestion finished before it could be killed: make the corpus larger"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = ready_count(crash)
    assert 0 < killed_at < 200

    second = cli(crash, "ingest", str(docs), "--kb", "kb")
    assert "200 ready" in second.stdout or "unchanged" in second.stdout, second.stdout
    cli(clean, "ingest", str(docs), "--kb", "kb")

    crashed, cleaned = summary(crash), summary(clean)
    assert crashed[:3] == (200, 200, 200), crashed
    assert cleaned[:3] == (200, 200, 200), cleaned
    assert crashed[3] == cleaned[3] == crashed[4] == cleaned[4], (crashed, cleaned)
