"""The near-duplicates API over real HTTP (`zhiku serve` in a subprocess, the default model) and `zhiku dedup`
through it: groups of a translation and of an edited copy, hostile inputs refused with precise 4xx, scopes, and
keeping one document per group."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import zhiku_server
from zhiku.bench.duplicates import edited_copy, load_corpus

ADMIN = "dedup-admin-key-0123456789abcdef0123456789"
ZHIKU = str(Path(sys.executable).parent / "zhiku")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("dedup-api")
    with zhiku_server(workdir, auth="on", admin_api_key=ADMIN) as (url, _):
        yield url, workdir / "home"


def client(url: str, key: str = ADMIN) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def ingest(url: str, name: str, files: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A new knowledge base with ``files`` uploaded and ready; its id and the documents' ids by file name."""
    with client(url) as http:
        body = {"name": name, "chunk_tokens": 64, "chunk_overlap": 0}
        kb = http.post("/api/v1/knowledge-bases", json=body).json()["id"]
        parts = [("files", (n, text.encode(), "text/plain")) for n, text in files.items()]
        uploaded = http.post(f"/api/v1/knowledge-bases/{kb}/documents", files=parts)
        assert uploaded.status_code == 201, uploaded.text
        deadline = time.monotonic() + 300
        while True:
            documents = http.get(f"/api/v1/knowledge-bases/{kb}/documents").json()
            if all(d["status"] == "ready" for d in documents) and len(documents) == len(files):
                return kb, {d["filename"]: d["id"] for d in documents}
            assert time.monotonic() < deadline, documents
            time.sleep(0.5)


def test_duplicates_api_cli_and_resolve(server: tuple[str, Path], evaldata: Path) -> None:
    url, home = server
    en, zh = load_corpus(evaldata, "en"), load_corpus(evaldata, "zh")
    edited = edited_copy(en["xq-08-00"], random.Random(3))  # noqa: S311 - reproducible edits
    files = {"super-bowl.txt": en["xq-04-00"], "超级碗.txt": zh["xq-04-00"], "notes.txt": en["xq-08-00"],
             "notes-copy.txt": edited, "other.txt": en["xq-01-00"], "sibling.txt": en["xq-04-01"]}  # fmt: skip
    kb, ids = ingest(url, "dedup", files)
    base = f"/api/v1/knowledge-bases/{kb}"
    with client(url) as http:
        found = http.get(f"{base}/duplicates")
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["level"] == "documents"
        assert body["threshold"] == 0.85
        groups = {frozenset(m["filename"] for m in g["members"]): g for g in body["groups"]}
        assert set(groups) == {frozenset({"super-bowl.txt", "超级碗.txt"}), frozenset({"notes.txt", "notes-copy.txt"})}
        translation = groups[frozenset({"super-bowl.txt", "超级碗.txt"})]
        assert translation["kinds"] == ["translation"]
        assert sorted(m["language"] for m in translation["members"]) == ["latin", "zh"]
        assert groups[frozenset({"notes.txt", "notes-copy.txt"})]["kinds"] == ["copy"]
        chunks = http.get(f"{base}/duplicates", params={"level": "chunks"}).json()
        assert chunks["level"] == "chunks"
        assert all(m["chunk_id"] for g in chunks["groups"] for m in g["members"])
        only = http.get(f"{base}/duplicates", params={"kinds": "copy"}).json()["groups"]
        assert [g["kinds"] for g in only] == [["copy"]]

        # hostile inputs: precise 4xx with the parameter named
        for params, param in [({"threshold": "2"}, "threshold"), ({"threshold": "0.2"}, "threshold"),
                              ({"threshold": "nan"}, "threshold"), ({"threshold": "abc"}, "threshold"),
                              ({"level": "pages"}, "level"), ({"level": "x" * 50}, "level"),
                              ({"kinds": "twin"}, "kinds.0"), ({"limit": "0"}, "limit")]:  # fmt: skip
            refused = http.get(f"{base}/duplicates", params=params)
            assert refused.status_code == 400, (params, refused.text)
            assert refused.json()["error"]["param"] in (param, f"query.{param}"), (params, refused.text)
        assert http.get("/api/v1/knowledge-bases/nope/duplicates").status_code == 404
        for bad, param in [({"threshold": "0.9"}, "threshold"), ({"threshold": 3}, "threshold"),
                           ({"kinds": ["twin"]}, "kinds.0"), ({"keep": "not-a-list"}, "keep"),
                           ({"delete": ["x"]}, "delete")]:  # fmt: skip
            refused = http.post(f"{base}/duplicates/resolve", json=bad)
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"]["param"] == param, (bad, refused.text)
        missing = http.post(f"{base}/duplicates/resolve", json={"keep": [ids["other.txt"]]})
        assert missing.status_code == 404, missing.text
        reader = http.post("/api/v1/keys", json={"scope": "read", "name": "reader"})
        assert reader.status_code == 201, reader.text
    with client(url, reader.json()["key"]) as http:
        assert http.get(f"{base}/duplicates").status_code == 200
        assert http.post(f"{base}/duplicates/resolve", json={}).status_code == 403

    # the CLI goes through the server
    env = {**os.environ, "ZHIKU_HOME": str(home), "ZHIKU_URL": url, "ZHIKU_API_KEY": ADMIN, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([ZHIKU, "dedup", "--kb", "dedup", "--json"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["groups"]) == 2
    table = subprocess.run([ZHIKU, "dedup", "--kb", "dedup", "--threshold", "0.9"], env=env, capture_output=True,
                           text=True, timeout=300, check=False)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "translation" in table.stdout
    assert "groups of near-duplicate documents (threshold 0.90)" in " ".join(table.stdout.split())
    hostile = subprocess.run([ZHIKU, "dedup", "--kb", "dedup", "--threshold", "7"], env=env, capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    assert hostile.returncode != 0
    assert "threshold must be between 0.5 and 1" in " ".join((hostile.stdout + hostile.stderr).split())

    # keep the Chinese version: only its group is resolved; then the CLI keeps one of the rest
    with client(url) as http:
        resolved = http.post(f"{base}/duplicates/resolve", json={"keep": [ids["超级碗.txt"]]}).json()
        assert [m["filename"] for m in resolved["kept"]] == ["超级碗.txt"]
        assert [m["filename"] for m in resolved["deleted"]] == ["super-bowl.txt"]
    kept = subprocess.run([ZHIKU, "dedup", "--kb", "dedup", "--keep-one", "--json"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert [m["filename"] for m in json.loads(kept.stdout)["resolved"]["deleted"]] == ["notes-copy.txt"]
    with client(url) as http:
        remaining = sorted(d["filename"] for d in http.get(f"{base}/documents").json())
        assert remaining == ["notes.txt", "other.txt", "sibling.txt", "超级碗.txt"]
        assert http.get(f"{base}/duplicates").json()["groups"] == []
