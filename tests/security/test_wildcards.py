"""Issue #17, item 5: ids are ids, not patterns. Every route and command that takes an id (API keys, documents and
their file, labels, re-ingestion, pages, jobs and their cancel/retry/events, chunks, the search filter
``document=``) is tried on a real `zhiku serve` with families of hostile ids: SQL ``LIKE`` wildcards raw and
percent-encoded, globs, backslashes, quotes, control characters, other scripts, short and over-long prefixes.
Each gets a 404 in the OpenAI error shape and nothing is revoked, deleted, served or matched; an id prefix of 6+ hex
digits still works, and one that matches several rows is refused with 409 ``ambiguous_id``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.servers import zhiku_server

ADMIN = "wildcards-admin-key-0123456789abcdef0123456789"
ZHIKU = str(Path(sys.executable).parent / "zhiku")
TALLY: Counter[str] = Counter()


def hostile(real: str) -> list[str]:
    """Ids that must never name a row, built around a real id ``real`` (as the server receives them)."""
    return [
        "%", "%%", "%25", "%2525", "_", "__", "_" * 32, "%_%", "*", "**", "?", "[0-9a-f]*", "\\", "\\%", "\\_",
        "'", "' OR '1'='1", '"', ";", "--", "%00", "\x00", "\n", "\t", " ", "  ", "+", "中", "文档编号", "é" * 3,
        "é" * 40, "ß", "🙂", "Ａ" * 6, "٠١٢٣٤٥",  # full-width letters and Arabic-Indic digits are not hex digits
        "0", "a", "", real[:1], real[:3], real[:5], real[:5] + "%", real[:5] + "_", real[:6] + "%", real[:6] + "*",
        "%" + real[-8:], "_" + real[1:], real[:31] + "_", real[:31] + "%", real[:16] + "%" + real[17:], " " + real,
        real + " ", real + "0", real * 2, real + "%", "0" * 33, "f" * 300, "x" * 300, "%" * 1000, "9" * 5000,
    ]  # fmt: skip


@dataclass
class World:
    """The server, its database, and the rows the hostile ids aim at."""

    url: str
    home: Path
    kb: str
    document: str
    job: str
    chunk: str
    solo_key: str
    solo_key_id: str

    def client(self, key: str = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def sql(self, statement: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.home / "zhiku.db", timeout=30) as db:
            return list(db.execute(statement, args))

    def clone(self, table: str, row_id: str, new_id: str, **changes: object) -> None:
        """Copy a row under another id (to make an id prefix ambiguous), changing unique columns."""
        columns = [str(c[1]) for c in self.sql(f"PRAGMA table_info({table})")]
        values = ", ".join("?" if c == "id" or c in changes else c for c in columns)
        args = [new_id if c == "id" else changes[c] for c in columns if c == "id" or c in changes]
        statement = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table} WHERE id = ?"  # noqa: S608
        self.sql(statement, *args, row_id)


def twin_id(real: str, keep: int) -> str:
    """An id sharing exactly ``keep`` leading digits with ``real``."""
    flipped = "0" if real[keep] != "0" else "1"
    return real[:keep] + flipped + "e" * (31 - keep)


def path(ident: str) -> str:
    return quote(ident, safe="")


def expect_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    TALLY["tried"] += 1
    TALLY[f"{response.status_code // 100}xx"] += 1
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("wildcards")
    home = workdir / "home"
    settings = {"auth": "on", "admin_api_key": ADMIN, "rate_limit_read": "100000/minute",
                "rate_limit_write": "100000/minute"}  # fmt: skip
    with (
        zhiku_server(workdir, **settings) as (url, _),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120) as client,
    ):
        kb = client.post("/api/v1/knowledge-bases", json={"name": "only"}).json()["id"]
        text = "The only document of this knowledge base. 这是唯一的文档。\n" * 20
        upload = client.post(f"/api/v1/knowledge-bases/{kb}/documents", files=[("files", ("only.txt", text.encode()))])
        assert upload.status_code == 201, upload.text
        document, job = upload.json()[0]["document_id"], upload.json()[0]["job_id"]
        deadline = time.monotonic() + 120
        while client.get(f"/api/v1/jobs/{job}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, client.get(f"/api/v1/jobs/{job}").text
            time.sleep(0.2)
        hits = client.post(f"/api/v1/knowledge-bases/{kb}/search", json={"query": "only document"}).json()["hits"]
        env = {**os.environ, "ZHIKU_HOME": str(home)}
        solo = subprocess.run([ZHIKU, "keys", "create", "--tenant", "solo", "--scope", "admin"], env=env,
                              capture_output=True, text=True, check=True, timeout=120).stdout.strip()  # fmt: skip
        solo_id = httpx.get(f"{url}/api/v1/keys", headers={"Authorization": f"Bearer {solo}"}).json()[0]["id"]
        yield World(url, home, kb, document, job, hits[0]["chunk_id"], solo, solo_id)
    print(f"\nwildcards: {dict(TALLY)}")


def intact(world: World) -> None:
    """The targets are all still there: the solo tenant's only key works, the document and its file are served."""
    with world.client(world.solo_key) as solo:
        assert solo.get("/api/v1/keys").status_code == 200
    with world.client() as client:
        base = f"/api/v1/knowledge-bases/{world.kb}"
        assert client.get(f"{base}/documents/{world.document}").json()["status"] == "ready"
        assert client.get(f"{base}/documents/{world.document}/file").status_code == 200
        assert client.get(f"/api/v1/jobs/{world.job}").json()["status"] == "succeeded"


def test_hostile_key_ids_revoke_nothing(world: World) -> None:
    with world.client(world.solo_key) as solo:
        for ident in hostile(world.solo_key_id):
            if not ident:
                continue  # /api/v1/keys/ is the list route
            expect_error(solo.delete(f"/api/v1/keys/{path(ident)}"), 404, "not_found")
    intact(world)


def test_hostile_document_ids_on_every_document_route(world: World) -> None:
    base = f"/api/v1/knowledge-bases/{world.kb}"
    with world.client() as client:
        for ident in hostile(world.document):
            if not ident:
                continue
            doc = f"{base}/documents/{path(ident)}"
            expect_error(client.get(doc), 404, "not_found")
            expect_error(client.get(f"{doc}/file"), 404, "not_found")
            expect_error(client.get(f"{doc}/pages/1"), 404, "not_found")
            expect_error(client.patch(doc, json={"add_tags": ["pwned"]}), 404, "not_found")
            expect_error(client.post(f"{doc}/reingest"), 404, "not_found")
            expect_error(client.delete(doc), 404, "not_found")
            expect_error(client.get(f"{base}/chunks/{path(ident)}"), 404, "not_found")
        for ident in hostile(world.chunk):
            if ident:
                expect_error(client.get(f"{base}/chunks/{path(ident)}"), 404, "not_found")
        assert client.get(f"{base}/documents/{world.document}").json()["tags"] == []
    intact(world)


def test_hostile_job_ids(world: World) -> None:
    with world.client() as client:
        for ident in hostile(world.job):
            if not ident:
                continue
            job = f"/api/v1/jobs/{path(ident)}"
            expect_error(client.get(job), 404, "not_found")
            expect_error(client.get(f"{job}/events"), 404, "not_found")
            expect_error(client.post(f"{job}/cancel"), 404, "not_found")
            expect_error(client.post(f"{job}/retry"), 404, "not_found")
    intact(world)


def test_hostile_document_filters_match_nothing(world: World) -> None:
    search = f"/api/v1/knowledge-bases/{world.kb}/search"
    with world.client() as client:
        assert client.post(search, json={"query": "only document"}).json()["hits"]
        for ident in hostile(world.document):
            if not ident or ident != ident.strip() or "\x00" in ident:
                continue  # the filter grammar trims values; a NUL is refused before
            response = client.post(search, json={"query": "only document", "filters": [f"document={ident}"]})
            TALLY["tried"] += 1
            TALLY[f"{response.status_code // 100}xx"] += 1
            assert response.status_code == 200, (ident, response.text)
            assert response.json()["hits"] == [], ident
        for ref in (world.document, world.document[:6], world.document.upper(), "only.txt"):
            found = client.post(search, json={"query": "only document", "filters": [f"document={ref}"]})
            assert {h["document_id"] for h in found.json()["hits"]} == {world.document}, ref


def test_prefixes_of_six_digits_work_and_ambiguous_ones_are_refused(world: World) -> None:
    base = f"/api/v1/knowledge-bases/{world.kb}"
    with world.client() as client:
        for size in (6, 12, 31):
            assert client.get(f"{base}/documents/{world.document[:size]}").json()["id"] == world.document
            assert client.get(f"/api/v1/jobs/{world.job[:size]}").json()["id"] == world.job
        assert client.get(f"{base}/documents/{world.document.upper()}").json()["id"] == world.document
        expect_error(client.get(f"{base}/documents/{world.document[:5]}"), 404, "not_found")

        other = client.post(f"{base}/documents", files=[("files", ("other.txt", b"Another document.\n" * 30))])
        other_id, other_job = other.json()[0]["document_id"], other.json()[0]["job_id"]
        twin, job_twin = twin_id(other_id, 8), twin_id(other_job, 8)
        world.clone("documents", other_id, twin, source="upload:twin.txt")
        world.clone("jobs", other_job, job_twin, document_id=twin)
        for ident in (other_id[:6], other_id[:8], other_id[:8].upper()):
            error = expect_error(client.get(f"{base}/documents/{ident}"), 409, "ambiguous_id")
            assert "matches 2 documents" in str(error["message"])
            expect_error(client.delete(f"{base}/documents/{ident}"), 409, "ambiguous_id")
            expect_error(client.get(f"{base}/documents/{ident}/file"), 409, "ambiguous_id")
            expect_error(client.post(f"{base}/documents/{ident}/reingest"), 409, "ambiguous_id")
            search = client.post(f"{base}/search", json={"query": "document", "filters": [f"document={ident}"]})
            expect_error(search, 409, "ambiguous_id")
        for ident in (other_job[:6], other_job[:8]):
            error = expect_error(client.get(f"/api/v1/jobs/{ident}"), 409, "ambiguous_id")
            assert "matches 2 jobs" in str(error["message"])
            expect_error(client.post(f"/api/v1/jobs/{ident}/cancel"), 409, "ambiguous_id")
            expect_error(client.post(f"/api/v1/jobs/{ident}/retry"), 409, "ambiguous_id")
        assert client.get(f"{base}/documents/{other_id[:9]}").json()["id"] == other_id  # one more digit decides
        assert client.get(f"{base}/documents/{twin[:9]}").json()["id"] == twin
        assert client.get(f"/api/v1/jobs/{other_job[:9]}").json()["id"] == other_job
        assert client.delete(f"{base}/documents/{twin}").status_code == 204
        assert client.get(f"{base}/documents/{other_id[:8]}").json()["id"] == other_id  # unique again

        created = [client.post("/api/v1/keys", json={"scope": "read", "name": f"k{i}"}).json() for i in range(2)]
        key_twin = twin_id(created[0]["id"], 7)
        world.clone("api_keys", created[0]["id"], key_twin, key_hash="0" * 64)
        expect_error(client.delete(f"/api/v1/keys/{created[0]['id'][:7]}"), 409, "ambiguous_id")
        with world.client(created[0]["key"]) as reader:
            assert reader.get(f"{base}/documents").status_code == 200  # not revoked
        assert client.delete(f"/api/v1/keys/{created[0]['id'][:8]}").json()["revoked_at"] is not None
    intact(world)


def test_the_cli_takes_ids_literally(world: World) -> None:
    env = {**os.environ, "ZHIKU_HOME": str(world.home), "COLUMNS": "200"}
    commands = [["keys", "revoke", "%"], ["keys", "revoke", "_"], ["keys", "revoke", world.solo_key_id[:5]],
                ["docs", "delete", "%", "--kb", "only"], ["docs", "delete", "_" * 32, "--kb", "only"],
                ["docs", "label", "%", "--kb", "only", "--tag", "x"], ["jobs", "show", "%"],
                ["jobs", "cancel", "_"], ["jobs", "retry", "%%"]]  # fmt: skip
    for command in commands:
        done = subprocess.run([ZHIKU, *command], env=env, capture_output=True, text=True, timeout=120, check=False)
        TALLY["tried"] += 1
        TALLY["cli refused" if done.returncode == 2 else "cli other"] += 1
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "error:" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
    intact(world)
