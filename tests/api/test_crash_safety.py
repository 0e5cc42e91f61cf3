"""kill -9 the server in the middle of a 50-file upload: after a restart every accepted document is complete or
failed with a reason, none is half-indexed (vectors = chunks of the active version, no stray versions), and
uploading the set again finishes it with exactly 50 documents."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx

from tests.servers import zhiku_server
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.storage.models import Chunk, Document
from zhiku.storage.vectors.base import SearchFilter

FILES = 50
SETTINGS = {"job_heartbeat_seconds": "0.5", "job_stale_seconds": "2", "embedding_cache": "off"}


def corpus() -> dict[str, bytes]:
    words = "river mountain lantern harbour orchard meadow glacier canyon prairie lagoon".split()
    return {
        f"note-{i:02d}.md": (f"# Note {i}\n\n" + "\n\n".join(
            f"Paragraph {p} of note {i}: the {words[(i + p) % 10]} and the {words[(i * p) % 10]} "
            f"are described in detail, item {i * 100 + p}." for p in range(40))).encode()
        for i in range(FILES)
    }  # fmt: skip


async def upload_all(url: str, kb_id: str, files: dict[str, bytes], on_accept: object = None) -> dict[str, str]:
    """Upload one file per request, four at a time; returns filename -> outcome for accepted uploads."""
    accepted: dict[str, str] = {}
    queue = list(files.items())

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            name, data = queue.pop(0)
            try:
                response = await client.post(f"/api/v1/knowledge-bases/{kb_id}/documents",
                                             files=[("files", (name, data, "text/markdown"))])  # fmt: skip
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 201:
                accepted[name] = response.json()[0]["outcome"]
                if callable(on_accept):
                    on_accept(len(accepted))

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(4)))
    return accepted


def wait_idle(url: str, timeout: float = 300) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            jobs = client.get("/api/v1/jobs", params={"limit": 1000}).json()
            if all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs):
                return list(client.get("/api/v1/knowledge-bases/crash/documents").json())
            time.sleep(0.5)
    raise AssertionError("jobs did not finish")


def test_kill_9_during_a_50_file_upload(tmp_path: Path) -> None:
    files = corpus()
    with zhiku_server(tmp_path, **SETTINGS) as (url, pid):
        kb = httpx.post(f"{url}/api/v1/knowledge-bases", json={"name": "crash"}).json()

        def kill_after_20(count: int) -> None:
            if count == 20:
                os.kill(pid, signal.SIGKILL)

        accepted = asyncio.run(upload_all(url, kb["id"], files, kill_after_20))
    assert 20 <= len(accepted) < FILES

    with zhiku_server(tmp_path, **SETTINGS) as (url, _):
        documents = wait_idle(url)
        by_name = {d["filename"]: d for d in documents}
        for name in accepted:  # every accepted upload survived the crash and finished one way or the other
            assert name in by_name, name
            assert by_name[name]["status"] in ("ready", "failed"), by_name[name]
            if by_name[name]["status"] == "failed":
                assert by_name[name]["error"]
        again = asyncio.run(upload_all(url, kb["id"], files))
        assert len(again) == FILES
        assert {again[name] for name in accepted} <= {"unchanged", "queued"}
        documents = wait_idle(url)
        assert len(documents) == FILES
        assert {d["status"] for d in documents} == {"ready"}
        assert sorted(d["filename"] for d in documents) == sorted(files)

    zhiku = Zhiku(Settings(home=tmp_path / "home"))  # the server is stopped: inspect its stores directly
    try:
        with zhiku.db.session() as session:
            rows = list(session.query(Document))
            for document in rows:
                chunks = session.query(Chunk).filter_by(document_id=document.id, version=document.version).count()
                assert chunks == document.chunk_count > 0
                collection = document.knowledge_base.collection
                active = SearchFilter(document_ids=[document.id], payload={"version": document.version})
                assert zhiku.vectors.count(collection, active) == chunks, document.filename
                assert zhiku.vectors.count(collection, SearchFilter(document_ids=[document.id])) == chunks
    finally:
        zhiku.close()
