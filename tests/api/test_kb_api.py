"""The knowledge-base REST API over real HTTP (`zhiku serve` in a subprocess, the default model): every route,
SSE progress from queued to ready, auth, tenancy, rate limits and upload safety."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security import bombs
from tests.servers import zhiku_server

ADMIN = "test-admin-key-0123456789abcdef0123456789"
ZHIKU = str(Path(sys.executable).parent / "zhiku")


class Api:
    """A small client: the server URL, its home, and keys."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home

    def client(self, key: str | None = ADMIN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def cli_key(self, tenant: str, scope: str) -> str:
        env = {**os.environ, "ZHIKU_HOME": str(self.home)}
        done = subprocess.run([ZHIKU, "keys", "create", "--tenant", tenant, "--scope", scope], env=env,
                              capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
        return done.stdout.strip()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    workdir = tmp_path_factory.mktemp("api")
    settings = {"auth": "on", "admin_api_key": ADMIN, "rate_limit_read": "300/minute",
                "max_upload_bytes": str(64 * 1024 * 1024), "max_file_bytes": str(8 * 1024 * 1024)}  # fmt: skip
    with zhiku_server(workdir, **settings) as (url, _):
        yield Api(url, workdir / "home")


def wait_ready(api: Api, kb_id: str, job_ids: list[str]) -> list[dict[str, object]]:
    """Follow the knowledge base's SSE stream until every job has finished; return the events seen."""
    events: list[dict[str, object]] = []
    finished: set[str] = set()
    with api.client() as client, client.stream("GET", f"/api/v1/knowledge-bases/{kb_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            job = json.loads(line[5:])
            events.append(job)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                finished.add(str(job["id"]))
            if finished >= set(job_ids):
                break
    return events


def test_knowledge_base_lifecycle_upload_progress_search_and_previews(api: Api, evaldata: Path) -> None:
    pdf = evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf"
    docx = evaldata / "docs" / "docx-python-docx" / "par-known-paragraphs.docx"
    with api.client() as client:
        created = client.post("/api/v1/knowledge-bases", json={"name": "手册", "description": "docs",
                                                               "chunk_tokens": 128})  # fmt: skip
        assert created.status_code == 201, created.text
        kb = created.json()
        assert kb["model"] == "use-multilingual-v3"
        assert kb["dimension"] == 512
        assert client.post("/api/v1/knowledge-bases", json={"name": "手册"}).status_code == 409

        files = [("files", (pdf.name, pdf.read_bytes(), "application/pdf")),
                 ("files", (docx.name, docx.read_bytes(), "application/octet-stream"))]  # fmt: skip
        uploaded = client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents", files=files,
                               data={"tags": ["manual"], "metadata": json.dumps({"team": "docs"})})  # fmt: skip
        assert uploaded.status_code == 201, uploaded.text
        outcomes = uploaded.json()
        assert [o["outcome"] for o in outcomes] == ["queued", "queued"]
        job_ids = [o["job_id"] for o in outcomes]

        events = wait_ready(api, kb["id"], job_ids)
        stages = {(e["id"], e["status"]) for e in events}
        assert any(status == "running" for _, status in stages)  # progress was streamed, not just the end
        assert {e["status"] for e in events if e["id"] in job_ids and e["status"] != "running"} >= {"succeeded"}
        documents = client.get(f"/api/v1/knowledge-bases/{kb['id']}/documents").json()
        assert sorted(d["status"] for d in documents) == ["ready", "ready"]
        pdf_doc = next(d for d in documents if d["filename"] == pdf.name)
        assert pdf_doc["pages"] == 41
        assert pdf_doc["tags"] == ["manual"]
        assert pdf_doc["metadata"] == {"team": "docs"}

        found = client.post(f"/api/v1/knowledge-bases/{kb['id']}/search",
                            json={"query": "CTEX 是一个关于 TEX 的中文网站", "top_k": 3,
                                  "filters": ["tag=manual", "type=pdf"]})  # fmt: skip
        assert found.status_code == 200, found.text
        hits = found.json()["hits"]
        assert hits
        top = hits[0]
        assert top["filename"] == pdf.name
        assert top["page_start"] == 5
        assert "<mark>" in top["highlighted"]
        page = client.get(f"/api/v1/knowledge-bases/{kb['id']}/documents/{top['document_id']}/pages/5").json()
        assert top["text"][:30] in page["text"]
        assert page["pages"] == 41
        chunk = client.get(f"/api/v1/knowledge-bases/{kb['id']}/chunks/{top['chunk_id']}?context=1").json()
        assert chunk["text"] == top["text"]
        assert chunk["context_before"] or chunk["context_after"]

        original = client.get(f"/api/v1/knowledge-bases/{kb['id']}/documents/{pdf_doc['id']}/file")
        assert original.status_code == 200
        assert original.content == pdf.read_bytes()

        relabelled = client.patch(f"/api/v1/knowledge-bases/{kb['id']}/documents/{pdf_doc['id']}",
                                  json={"add_tags": ["faq"], "set_metadata": {"lang": "zh"}})  # fmt: skip
        assert relabelled.json()["tags"] == ["faq", "manual"]
        renamed = client.patch(f"/api/v1/knowledge-bases/{kb['id']}", json={"description": "CTeX and docx"})
        assert renamed.json()["description"] == "CTeX and docx"
        assert renamed.json()["documents"] == {"ready": 2}

        again = client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents/{pdf_doc['id']}/reingest")
        assert again.status_code == 202
        wait_ready(api, kb["id"], [again.json()["job_id"]])
        assert client.get(f"/api/v1/knowledge-bases/{kb['id']}/documents/{pdf_doc['id']}").json()["version"] == 2
        job = client.get(f"/api/v1/jobs/{again.json()['job_id']}").json()
        assert job["status"] == "succeeded"
        assert client.post(f"/api/v1/jobs/{job['id']}/retry").status_code == 409  # only failed/cancelled jobs
        listed_jobs = client.get("/api/v1/jobs", params={"knowledge_base_id": kb["id"]}).json()
        assert len(listed_jobs) == 3

        assert client.delete(f"/api/v1/knowledge-bases/{kb['id']}/documents/{pdf_doc['id']}").status_code == 204
        assert client.get(f"/api/v1/knowledge-bases/{kb['id']}/documents/{pdf_doc['id']}").status_code == 404
        assert client.get(f"/api/v1/knowledge-bases/{kb['id']}").json()["documents"] == {"ready": 1}
        assert client.delete(f"/api/v1/knowledge-bases/{kb['id']}").status_code == 204
        assert client.get(f"/api/v1/knowledge-bases/{kb['id']}").status_code == 404


def test_job_event_stream_follows_one_job_and_failures_carry_a_reason(api: Api) -> None:
    with api.client() as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "jobs"}).json()
        # a sound PDF (it passes the upload's structural check) whose one page has no text: the job fails
        broken = [("files", ("broken.pdf", bombs.pdf([b""]), "application/pdf"))]
        outcome = client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents", files=broken).json()[0]
        statuses = []
        with client.stream("GET", f"/api/v1/jobs/{outcome['job_id']}/events") as response:
            for line in response.iter_lines():
                if line.startswith("event: end"):
                    break
                if line.startswith("data:"):
                    statuses.append(json.loads(line[5:])["status"])
        assert statuses[-1] == "failed"
        document = client.get(f"/api/v1/knowledge-bases/{kb['id']}/documents/{outcome['document_id']}").json()
        assert document["status"] == "failed"
        assert "pdf" in document["error"].lower()
        retried = client.post(f"/api/v1/jobs/{outcome['job_id']}/retry")
        assert retried.status_code == 200
        assert retried.json()["status"] == "queued"
        cancelled = client.post(f"/api/v1/jobs/{outcome['job_id']}/cancel").json()
        assert cancelled["status"] in ("cancelled", "running", "failed", "queued")


def test_authentication_scopes_and_tenancy(api: Api) -> None:
    with api.client(None) as anonymous:
        response = anonymous.get("/api/v1/knowledge-bases")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert anonymous.post("/v1/embeddings", json={"input": "x"}).status_code == 401
    with api.client("zk-not-a-real-key") as wrong:
        assert wrong.get("/api/v1/knowledge-bases").status_code == 401

    with api.client() as admin:
        kb = admin.post("/api/v1/knowledge-bases", json={"name": "private"}).json()
        reader = admin.post("/api/v1/keys", json={"scope": "read", "name": "reader"}).json()
        assert reader["key"].startswith("zk-")
        assert all("key" not in k for k in admin.get("/api/v1/keys").json())
    with api.client(reader["key"]) as read_only:
        assert read_only.get(f"/api/v1/knowledge-bases/{kb['id']}").status_code == 200
        assert read_only.post("/v1/embeddings", json={"input": "x"}).status_code == 200
        denied = read_only.post("/api/v1/knowledge-bases", json={"name": "nope"})
        assert denied.status_code == 403
        assert "scope" in denied.json()["error"]["message"]
        assert read_only.delete(f"/api/v1/knowledge-bases/{kb['id']}").status_code == 403
        assert read_only.get("/api/v1/keys").status_code == 403

    other = api.cli_key("tenant-b", "admin")
    with api.client(other) as stranger:
        assert stranger.get("/api/v1/knowledge-bases").json() == []
        for method, path in [("GET", f"/api/v1/knowledge-bases/{kb['id']}"),
                             ("DELETE", f"/api/v1/knowledge-bases/{kb['id']}"),
                             ("POST", f"/api/v1/knowledge-bases/{kb['id']}/search"),
                             ("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents")]:  # fmt: skip
            body = {"query": "x"} if method == "POST" else None
            response = stranger.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
        assert stranger.post("/api/v1/knowledge-bases", json={"name": "private"}).status_code == 201  # own namespace

    with api.client() as admin:
        assert admin.delete(f"/api/v1/keys/{reader['id']}").json()["revoked_at"] is not None


def test_upload_safety(api: Api, tmp_path: Path) -> None:
    with api.client() as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "uploads"}).json()
        url = f"/api/v1/knowledge-bases/{kb['id']}/documents"

        sneaky = client.post(url, files=[("files", ("../../etc/passwd.txt", b"root:x:0:0", "text/plain"))])
        assert sneaky.status_code == 201, sneaky.text
        stored = client.get(f"{url}/{sneaky.json()[0]['document_id']}").json()
        assert stored["filename"] == "passwd.txt"
        assert not (api.home.parent / "etc").exists()

        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
        refused = client.post(url, files=[("files", ("ok.txt", b"fine", "text/plain")),
                                          ("files", ("photo.png", png, "image/png"))])  # fmt: skip
        assert refused.status_code == 415
        assert "photo.png" in refused.json()["error"]["message"]
        names = {d["filename"] for d in client.get(url).json()}
        assert "ok.txt" not in names  # nothing of a refused request is registered

        assert client.post(url, files=[("files", ("empty.txt", b"", "text/plain"))]).status_code == 422
        assert client.post(url, json={"files": []}).status_code == 415
        assert client.post(url, files=[("other", ("a.txt", b"x", "text/plain"))]).status_code == 400
        too_big = client.post(url, files=[("files", ("big.txt", b"a " * (5 * 1024 * 1024), "text/plain"))])
        assert too_big.status_code == 413
        assert "max_file_bytes" in too_big.json()["error"]["message"]
        bad_meta = client.post(url, files=[("files", ("a.txt", b"x", "text/plain"))], data={"metadata": "[1]"})
        assert bad_meta.status_code == 400

        import zipfile

        bomb = tmp_path / "bomb.docx"
        with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("word/document.xml", b"\x00" * (600 * 1024 * 1024))
        response = client.post(url, files=[("files", ("bomb.docx", bomb.read_bytes(), "application/zip"))])
        assert response.status_code == 415
        assert "ZIP bomb" in response.json()["error"]["message"]


def test_a_2_gb_upload_is_refused_before_its_body_is_read(api: Api) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (f"POST /api/v1/knowledge-bases/x/documents HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {ADMIN}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {2 * 1024**3}\r\n\r\n")  # fmt: skip
        sock.sendall(head.encode() + b"--b\r\n" + b"x" * 65536)
        received = b""
        while chunk := sock.recv(65536):  # the server answers and closes without reading the rest
            received += chunk
        reply = received.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "2,147,483,648 bytes" in reply
    with api.client() as client:
        assert client.get("/healthz").status_code == 200


def test_a_burst_of_1000_requests_gets_429s_and_no_5xx(api: Api) -> None:
    with api.client() as admin:
        key = admin.post("/api/v1/keys", json={"scope": "read", "name": "burst"}).json()["key"]

    async def burst() -> Counter[int]:
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=api.url, headers=headers, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(*(client.get("/api/v1/knowledge-bases") for _ in range(1000)))
        retry_after = {r.headers.get("retry-after") for r in responses if r.status_code == 429}
        assert None not in retry_after
        return Counter(r.status_code for r in responses)

    statuses = asyncio.run(burst())
    assert set(statuses) == {200, 429}, statuses
    assert statuses[200] == 300  # the configured 300/minute for this key
    with api.client() as admin:  # other keys are not affected
        assert admin.get("/api/v1/knowledge-bases").status_code == 200


def test_tenant_storage_quota(tmp_path: Path) -> None:
    with zhiku_server(tmp_path, tenant_quota_bytes="1000") as (url, _), httpx.Client(base_url=url) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "quota"}).json()
        url_docs = f"/api/v1/knowledge-bases/{kb['id']}/documents"
        first = client.post(url_docs, files=[("files", ("a.txt", b"a" * 600, "text/plain"))])
        assert first.status_code == 201
        second = client.post(url_docs, files=[("files", ("b.txt", b"b" * 600, "text/plain"))])
        assert second.status_code == 413
        assert "quota" in second.json()["error"]["message"]
