"""`zhiku worker`: Celery workers on the real Redis and PostgreSQL run the ingestion jobs; kill -9 one
mid-way and a second worker finishes everything exactly once.

Two workers run one after the other, not side by side: both would need the vector store, and the embedded
Qdrant Edge store (like qdrant-client's local mode) belongs to one process. Side by side needs a Qdrant
server (`vector_store = "qdrant"`), which cannot be installed on these machines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.conftest import POSTGRES_URL, _postgres_available, require
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import list_documents, register_file
from zhiku.storage.models import Job, JobStatus
from zhiku.storage.vectors.base import SearchFilter

REDIS_URL = "redis://127.0.0.1:6379/13"
FILES = 24


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    import redis

    require(_postgres_available(), f"PostgreSQL not reachable at {POSTGRES_URL}")
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.RedisError:
        require(False, "Redis not reachable at 127.0.0.1:6379")
    schema = f"zhiku_celery_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    database_url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    yield {
        "ZHIKU_HOME": str(tmp_path / "home"), "ZHIKU_DATABASE_URL": database_url,
        "ZHIKU_REDIS_URL": REDIS_URL, "ZHIKU_JOB_BACKEND": "celery", "ZHIKU_JOB_HEARTBEAT_SECONDS": "0.5",
        "ZHIKU_JOB_STALE_SECONDS": "3", "ZHIKU_EMBEDDING_CACHE": "off", "HF_HUB_OFFLINE": "1",
        "ZHIKU_INGEST_BATCH_DOCUMENTS": "2",  # small groups, so that the kill lands mid-way
    }  # fmt: skip
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
    redis.Redis.from_url(REDIS_URL).flushdb()


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(home=Path(env["ZHIKU_HOME"]), database_url=env["ZHIKU_DATABASE_URL"], redis_url=REDIS_URL,
                    job_backend="celery")  # fmt: skip


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    zhiku = str(Path(sys.executable).parent / "zhiku")
    with log.open("ab") as sink:
        return subprocess.Popen([zhiku, "worker", "-c", "2"], env={**os.environ, **env}, stdout=sink,
                                stderr=subprocess.STDOUT)  # fmt: skip


def job_counts(zhiku: Zhiku) -> dict[str, int]:
    with zhiku.db.session() as session:
        rows = session.execute(sqlalchemy.select(Job.status, sqlalchemy.func.count()).group_by(Job.status))
        return {str(status): int(n) for status, n in rows}


def test_workers_run_jobs_and_survive_kill_9(environment: dict[str, str], tmp_path: Path) -> None:
    settings = settings_of(environment)
    setup = Zhiku(settings)
    kb = create_knowledge_base(setup, "celery", chunk_tokens=64, chunk_overlap=0)
    setup.close()  # releases the vector store: the workers own it from now on

    log = tmp_path / "workers.log"
    first = start_worker(environment, log)
    zhiku = Zhiku(settings)  # registers files and reads job rows; never opens the vector store
    try:
        for i in range(FILES):
            path = tmp_path / f"note-{i}.md"
            lines = " ".join(f"Line {j} of note {i} about harbour {i * j}." for j in range(60))
            path.write_text(f"# Note {i}\n\n{lines}")
            assert register_file(zhiku, kb, path).outcome == "queued"
        deadline = time.monotonic() + 180
        while job_counts(zhiku).get(JobStatus.succeeded, 0) < 6:
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert job_counts(zhiku).get(JobStatus.succeeded, 0) < FILES  # killed mid-way

        second = start_worker(environment, log)
        try:
            deadline = time.monotonic() + 300
            while job_counts(zhiku).get(JobStatus.succeeded, 0) < FILES:
                assert second.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, (job_counts(zhiku), log.read_text()[-3000:])
                time.sleep(0.3)
        finally:
            second.terminate()
            second.wait(timeout=60)
        assert job_counts(zhiku) == {JobStatus.succeeded: FILES}
        documents = list_documents(zhiku, kb)
        assert len(documents) == FILES
        assert {d.status for d in documents} == {"ready"}
        for document in documents:  # exactly once: the vectors are the active version's chunks, no more
            found = zhiku.vectors.count(kb.collection, SearchFilter(document_ids=[document.id]))
            assert found == document.chunk_count > 0, document.filename
    finally:
        zhiku.close()
