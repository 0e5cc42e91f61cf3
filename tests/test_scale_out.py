"""Many processes, one knowledge base, for real: PostgreSQL + pgvector (metadata and vectors in one database) and
Redis; two `zhiku serve` API processes and two `zhiku worker` Celery processes sharing them (and one home, the
blob volume of a deployment); `zhiku serve --workers 2` on pgvector and on the embedded store (with its store process).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import require
from tests.servers import zhiku_server
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.documents import list_documents
from zhiku.storage.models import Job
from zhiku.storage.vectors.base import SearchFilter

REDIS_URL = "redis://127.0.0.1:6379/12"
ADMIN_KEY = "zk-scale-out-test-admin-key-0123456789abcdef"
DOCUMENTS = 100
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def shared(pgvector_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings every process of the deployment shares (as ``ZHIKU_*`` names without the prefix)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.RedisError:
        require(False, "Redis not reachable at 127.0.0.1:6379")
    yield {
        "home": str(tmp_path / "home"),  # the blob volume API replicas and workers share
        "database_url": pgvector_url,
        "vector_store": "pgvector",
        "redis_url": REDIS_URL,
        "job_backend": "celery",
        "job_heartbeat_seconds": "0.5",
        "job_stale_seconds": "3",
        "embedding_cache": "off",
        "ingest_batch_documents": "2",  # small groups, so that the kill lands mid-way
        "auth": "on",
        "admin_api_key": ADMIN_KEY,
        "metrics_auth": "true",
    }
    redis.Redis.from_url(REDIS_URL).flushdb()


def start_worker(settings: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **{f"ZHIKU_{k.upper()}": v for k, v in settings.items()}}
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "zhiku"), "worker", "-c", "1"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


class EventFollower(threading.Thread):
    """Follows a knowledge base's job events on one API and records the jobs it saw succeed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.succeeded, self.stop = url, set[str](), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=HEADERS, timeout=httpx.Timeout(10, read=None)) as response:
                response.raise_for_status()
                data: list[str] = []
                for line in response.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        job = json.loads("".join(data))
                        data = []
                        if job.get("status") == "succeeded":
                            self.succeeded.add(job["id"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            if not self.stop.is_set():
                self.error = exc


def _documents(client: httpx.Client, kb_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/knowledge-bases/{kb_id}/documents")
    response.raise_for_status()
    return list(response.json())


def test_two_apis_and_two_workers_share_one_knowledge_base(shared: dict[str, str], tmp_path: Path) -> None:
    workers = [start_worker(shared, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        with (
            zhiku_server(tmp_path / "api-a", **shared) as (url_a, _),
            zhiku_server(tmp_path / "api-b", **shared) as (url_b, _),
            httpx.Client(base_url=url_a, headers=HEADERS, timeout=60) as api_a,
            httpx.Client(base_url=url_b, headers=HEADERS, timeout=60) as api_b,
        ):
            created = api_a.post(
                "/api/v1/knowledge-bases", json={"name": "shared", "chunk_tokens": 64, "chunk_overlap": 0}
            )
            assert created.status_code == 201, created.text
            kb_id = created.json()["id"]
            follower = EventFollower(f"{url_b}/api/v1/knowledge-bases/{kb_id}/events")
            follower.start()

            job_ids: list[str] = []
            for batch in range(10):  # 100 documents, half through each API, 10 per request
                api = api_a if batch % 2 == 0 else api_b
                files = []
                for i in range(batch * 10, batch * 10 + 10):
                    lines = " ".join(f"Line {j} of note {i} about harbour {i * 31 + j}." for j in range(40))
                    files.append(("files", (f"note-{i:03d}.md", f"# Note {i}\n\n{lines}".encode(), "text/markdown")))
                uploaded = api.post(f"/api/v1/knowledge-bases/{kb_id}/documents", files=files)
                assert uploaded.status_code == 201, uploaded.text
                assert {o["outcome"] for o in uploaded.json()} == {"queued"}
                job_ids += [o["job_id"] for o in uploaded.json()]

            deadline = time.monotonic() + 300
            while sum(d["status"] == "ready" for d in _documents(api_a, kb_id)) < 20:
                assert all(w.poll() is None for w in workers), (tmp_path / "worker-0.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the workers did not get going"
                time.sleep(0.3)
            os.kill(workers[0].pid, signal.SIGKILL)  # mid-way: its running jobs are requeued by the other one
            workers[0].wait()
            assert sum(d["status"] == "ready" for d in _documents(api_b, kb_id)) < DOCUMENTS

            deadline = time.monotonic() + 600
            while True:
                documents = _documents(api_b, kb_id)
                if sum(d["status"] == "ready" for d in documents) == DOCUMENTS:
                    break
                assert workers[1].poll() is None, (tmp_path / "worker-1.log").read_text()[-3000:]
                assert time.monotonic() < deadline, sorted({d["status"] for d in documents})
                time.sleep(0.5)

            # every document exactly once, and ready
            assert sorted(d["filename"] for d in documents) == [f"note-{i:03d}.md" for i in range(DOCUMENTS)]
            assert _documents(api_a, kb_id) == documents or {d["id"] for d in _documents(api_a, kb_id)} == {
                d["id"] for d in documents
            }
            # the event stream of API B saw the jobs the workers finished
            deadline = time.monotonic() + 10
            while not set(job_ids) <= follower.succeeded and time.monotonic() < deadline:
                time.sleep(0.2)
            follower.stop.set()
            assert follower.error is None, follower.error
            assert set(job_ids) <= follower.succeeded, len(set(job_ids) - follower.succeeded)

            # chunk and vector counts agree, document by document
            settings = Settings(**{k: v for k, v in shared.items() if k != "home"}, home=Path(shared["home"]))
            with Zhiku(settings) as zhiku:
                kb = get_knowledge_base(zhiku, kb_id)
                rows = list_documents(zhiku, kb)
                assert len(rows) == DOCUMENTS
                for row in rows:
                    found = zhiku.vectors.count(kb.collection, SearchFilter(document_ids=[row.id]))
                    assert found == row.chunk_count > 0, row.filename
                assert zhiku.vectors.count(kb.collection) == sum(row.chunk_count or 0 for row in rows)

            # a search answers the same from either API
            query = {"query": "harbour 1553 note 50", "top_k": 5}
            first = api_a.post(f"/api/v1/knowledge-bases/{kb_id}/search", json=query)
            second = api_b.post(f"/api/v1/knowledge-bases/{kb_id}/search", json=query)
            assert first.status_code == second.status_code == 200, first.text
            hits = [(h["chunk_id"], round(h["score"], 5)) for h in first.json()["hits"]]
            assert hits == [(h["chunk_id"], round(h["score"], 5)) for h in second.json()["hits"]]
            assert first.json()["hits"][0]["filename"] == "note-050.md"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()


def test_serve_with_two_worker_processes(pgvector_url: str, tmp_path: Path) -> None:
    """`zhiku serve --workers 2` on pgvector: both processes run jobs, and requests on fresh connections (spread
    over the processes by the kernel) all see the same knowledge base."""
    settings = {"database_url": pgvector_url, "vector_store": "pgvector", "auth": "on", "admin_api_key": ADMIN_KEY,
                "ingest_batch_documents": "1"}  # fmt: skip
    with zhiku_server(tmp_path, workers=2, **settings) as (url, _):
        kb_id = _two_processes_share_one_knowledge_base(url)
    with Zhiku(Settings(home=tmp_path / "home", database_url=pgvector_url, vector_store="pgvector")) as zhiku:
        _check_both_ran_jobs(zhiku, kb_id)


def test_serve_with_two_worker_processes_on_the_embedded_store(tmp_path: Path) -> None:
    """`zhiku serve --workers 2` on the default store (SQLite + Qdrant Edge): a store process of its own owns the
    shards and both server processes ingest and search through it; when the server stops, so does the store
    process (shards flushed: the home opens in one process with every vector), and its socket folder is gone."""
    import psutil

    settings = {"auth": "on", "admin_api_key": ADMIN_KEY, "ingest_batch_documents": "1"}
    with zhiku_server(tmp_path, workers=2, **settings) as (url, pid):
        (store,) = [p for p in psutil.Process(pid).children() if "edge_process" in " ".join(p.cmdline())]
        socket = Path(store.cmdline()[-1])
        assert socket.exists()
        assert socket.parent.stat().st_mode & 0o077 == 0  # private to this user
        kb_id = _two_processes_share_one_knowledge_base(url)
    store.wait(timeout=30)  # ended with the server
    assert not socket.parent.exists()
    with Zhiku(Settings(home=tmp_path / "home")) as zhiku:
        _check_both_ran_jobs(zhiku, kb_id)
        kb = get_knowledge_base(zhiku, kb_id)
        assert zhiku.vectors.count(kb.collection) == 30


def test_the_store_process_stops_when_its_server_is_killed(tmp_path: Path) -> None:
    """A `zhiku serve --workers 2` killed without its cleanup (SIGKILL) leaves no store process behind holding the
    shards: the next server on the home can open them."""
    import psutil

    with zhiku_server(tmp_path, workers=2) as (url, pid):
        server = psutil.Process(pid)
        (store,) = [p for p in server.children() if "edge_process" in " ".join(p.cmdline())]
        workers = [p for p in server.children() if p.pid != store.pid]
        socket = Path(store.cmdline()[-1])
        server.kill()
        store.wait(timeout=30)
        assert not socket.parent.exists()  # the socket and its key removed by the store process itself
        for worker in workers:  # uvicorn's processes end with their parent's pipe; make sure before the next
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    with zhiku_server(tmp_path / "again", home=str(tmp_path / "home")) as (url, _):
        created = httpx.post(f"{url}/api/v1/knowledge-bases", json={"name": "after"}, timeout=60)
        assert created.status_code == 201, created.text


def _two_processes_share_one_knowledge_base(url: str) -> str:
    """Ingest 30 documents through ``url`` and search them on fresh connections (spread over the server's
    processes by the kernel); return the knowledge base's id."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        # /readyz is 503 from a process still loading its model: 30 fresh connections in a row answered 200
        # mean both processes (the kernel spreads connections over them) are up and running jobs
        ready_in_a_row, deadline = 0, time.monotonic() + 120
        while ready_in_a_row < 30 and time.monotonic() < deadline:
            ready_in_a_row = ready_in_a_row + 1 if httpx.get(f"{url}/readyz", timeout=30).status_code == 200 else 0
        kb_id = str(
            client.post("/api/v1/knowledge-bases", json={"name": "two", "chunk_tokens": 64, "chunk_overlap": 0}).json()[
                "id"
            ]
        )
        files = [
            ("files", (f"doc-{i}.txt", f"Document {i} tells about lighthouse number {i * 7}.".encode(), "text/plain"))
            for i in range(30)
        ]
        assert client.post(f"/api/v1/knowledge-bases/{kb_id}/documents", files=files).status_code == 201
        deadline = time.monotonic() + 180
        while {d["status"] for d in _documents(client, kb_id)} != {"ready"}:
            assert time.monotonic() < deadline, [d["status"] for d in _documents(client, kb_id)]
            time.sleep(0.2)
        for _ in range(10):
            with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as fresh:  # a new connection each time
                found = fresh.post(f"/api/v1/knowledge-bases/{kb_id}/search", json={"query": "lighthouse 35"})
                assert found.status_code == 200, found.text
                assert found.json()["hits"][0]["filename"] == "doc-5.txt"
                assert len(_documents(fresh, kb_id)) == 30
    return kb_id


def _check_both_ran_jobs(zhiku: Zhiku, kb_id: str) -> None:
    with zhiku.db.session() as session:
        runners = set(session.scalars(select(Job.worker).where(Job.kb_id == kb_id)))
    assert len(runners) == 2, runners  # "host:pid" of the job runner in each server process
