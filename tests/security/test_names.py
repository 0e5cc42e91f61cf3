"""Issue #17, item 3: long and strange names are display names, never path components, and never a 500.

A real `zhiku serve` takes uploads whose file names are long in characters or in UTF-8 bytes (scripts of 1 to 4
bytes per character, around the 255-byte file-name limit and far beyond), path-like, or made of odd characters:
each is accepted, shown under a name of at most 255 bytes that keeps its extension, and the keep-alive connection
stays usable after every request. Model strings of any length in a knowledge base, a re-index and
`/v1/embeddings` get a 4xx. `zhiku ingest` takes files whose names use the whole 255 bytes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import zhiku_server

ADMIN = "names-admin-key-0123456789abcdef0123456789abcdef"
ZHIKU = str(Path(sys.executable).parent / "zhiku")
TALLY: Counter[str] = Counter()

SCRIPTS = {"ascii": "a", "latin": "é", "decomposed": "e\u0301", "cyrillic": "ж", "greek": "λ", "arabic": "ع",
           "devanagari": "क", "chinese": "中", "japanese": "の", "korean": "한", "emoji": "🙂",
           "math": "𝔸"}  # fmt: skip


def upload_names() -> list[str]:
    """File names around and far beyond the 255-byte limit in every script, path-like and odd ones."""
    names = []
    for unit in SCRIPTS.values():
        size = len(unit.encode())
        for target_bytes in (250, 254, 255, 256, 261, 300, 1000):
            names.append(unit * (target_bytes // size))
            names.append(unit * (target_bytes // size) + ".md")
    names += [
        "中" * 87 + ".pdf", "a" * 254, "é" * 133, "x" * 4000 + ".txt", "报告" * 500 + ".html",
        "../" * 100 + "passwd", "a/" * 300 + "deep.txt", "..\\" * 50 + "win.txt", "C:\\Windows\\" + "w" * 300,
        "/" + "中" * 100 + "/" + "文" * 100 + ".md", ".hidden" + "h" * 300,
        "name\twith\ttabs" * 20, "tail.", "noext." + "e" * 300, "x." + "中" * 10, "\u202e" * 50 + "gpj.exe",
        "%00" * 100 + ".txt", "$(reboot)" * 30, "a\\b" * 100, "😀" * 64, "😀" * 63 + ".md",
    ]  # fmt: skip
    return list(dict.fromkeys(names))  # each name once: the same name again is a new version of its document


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("names")
    settings = {"auth": "on", "admin_api_key": ADMIN, "rate_limit_read": "100000/minute",
                "rate_limit_write": "100000/minute", "rate_limit_embed": "100000/minute"}  # fmt: skip
    with zhiku_server(workdir, **settings) as (url, _):
        yield url
    print(f"\nnames: {dict(TALLY)}")


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def kb(client: httpx.Client) -> str:
    created = client.post("/api/v1/knowledge-bases", json={"name": "names"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def count(response: httpx.Response) -> None:
    TALLY["tried"] += 1
    TALLY[f"{response.status_code // 100}xx"] += 1


def still_serving(client: httpx.Client) -> None:
    """The same keep-alive connection answers the next request."""
    assert client.get("/healthz").status_code == 200


def expected_extension(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    stem, dot, extension = base.rpartition(".")
    return "." + extension if dot and stem and len(extension.encode()) <= 16 else ""


def test_uploads_with_long_and_odd_names_are_accepted_under_a_short_display_name(client: httpx.Client, kb: str) -> None:
    names = upload_names()
    for index, name in enumerate(names):
        content = f"Document {index}: a file whose name is long or strange.\n".encode()
        response = client.post(f"/api/v1/knowledge-bases/{kb}/documents", files=[("files", (name, content))])
        count(response)
        assert response.status_code == 201, (name[:40], len(name), response.text)
        outcome = response.json()[0]
        shown = outcome["filename"]
        assert 0 < len(shown.encode()) <= 255, shown
        assert not {"/", "\\", "\x00"} & set(shown), shown
        assert shown.endswith(expected_extension(name)), (name[-20:], shown[-20:])
        plain = "/" not in name and "\\" not in name and name.isprintable() and name.strip(". ")
        if plain and len(name.encode()) <= 255:
            assert shown == name.strip().lstrip("."), (name, shown)  # short names are kept as they are
        document = client.get(f"/api/v1/knowledge-bases/{kb}/documents/{outcome['document_id']}")
        assert document.json()["filename"] == shown
        download = client.get(f"/api/v1/knowledge-bases/{kb}/documents/{outcome['document_id']}/file")
        assert download.status_code == 200
        assert download.content == content
        still_serving(client)


def test_names_without_a_usable_character_are_unnamed(client: httpx.Client, kb: str) -> None:
    for name in ("." * 300, "...", " " * 10, "\u202e" * 100, "/" * 300, "../" * 100):
        response = client.post(f"/api/v1/knowledge-bases/{kb}/documents", files=[("files", (name, b"nameless\n"))])
        count(response)
        assert response.status_code == 201, response.text
        assert response.json()[0]["filename"] == "unnamed"
        still_serving(client)


def test_many_long_names_in_one_upload(client: httpx.Client, kb: str) -> None:
    files = [("files", (unit * 300 + ".md", f"# {label}\n\nbatch file {label}\n".encode()))
             for label, unit in SCRIPTS.items()]  # fmt: skip
    response = client.post(f"/api/v1/knowledge-bases/{kb}/documents", files=files)
    count(response)
    assert response.status_code == 201, response.text
    assert [o["outcome"] for o in response.json()] == ["queued"] * len(SCRIPTS)
    assert all(o["filename"].endswith("….md") for o in response.json())
    still_serving(client)


def test_uploaded_long_names_are_ingested(client: httpx.Client, kb: str) -> None:
    name = "中" * 87 + ".md"
    response = client.post(f"/api/v1/knowledge-bases/{kb}/documents",
                           files=[("files", (name, "# 标题\n\n长文件名的文档可以被检索。\n".encode()))])  # fmt: skip
    job = response.json()[0]["job_id"]
    deadline = time.monotonic() + 120
    while (status := client.get(f"/api/v1/jobs/{job}").json()["status"]) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status == "succeeded", client.get(f"/api/v1/jobs/{job}").text
    document = client.get(f"/api/v1/knowledge-bases/{kb}/documents/{response.json()[0]['document_id']}").json()
    assert document["status"] == "ready"
    assert document["mime_type"] == "text/markdown"  # the kept extension still tells the type


def model_strings() -> list[str]:
    """Model names of many lengths and scripts; none is a registry or served model."""
    strings = []
    for unit in ("a", "é", "中", "🙂", "/", "../", "x/", "%", "\\"):
        for length in (100, 255, 256, 300, 499, 500, 501, 1000, 5000):
            strings.append((unit * length)[:length])
    strings += ["/" + "a" * 300, "/tmp/" + "中" * 300, "~/" + "x" * 300, "~" + "u" * 300, "a\x00b", " ", "\t"]
    return strings


def test_long_model_strings_get_a_4xx_everywhere(client: httpx.Client, kb: str) -> None:
    for model in model_strings():
        created = client.post("/api/v1/knowledge-bases", json={"name": "m", "model": model})
        reindexed = client.post(f"/api/v1/knowledge-bases/{kb}/reindex", json={"model": model})
        embedded = client.post("/v1/embeddings", json={"input": "x", "model": model})
        for response in (created, reindexed, embedded):
            count(response)
            assert response.status_code in (400, 404), (model[:30], len(model), response.text)
            error = response.json()["error"]
            assert error["code"] in ("model_not_found", "invalid_request"), error
            assert len(error["message"]) < 600, error
        still_serving(client)
    assert client.get("/api/v1/knowledge-bases/m").status_code == 404


def test_long_knowledge_base_names_get_a_4xx(client: httpx.Client) -> None:
    for unit in SCRIPTS.values():
        for length in (101, 255, 300, 1000):
            response = client.post("/api/v1/knowledge-bases", json={"name": unit * length})
            count(response)
            assert response.status_code == 400, response.text
            assert client.get(f"/api/v1/knowledge-bases/{unit * length}").status_code == 404
            still_serving(client)


def test_the_cli_ingests_files_whose_names_use_all_255_bytes(tmp_path: Path) -> None:
    folder = tmp_path / ("深" * 80)  # a long folder name too: paths are fine, only components are limited
    folder.mkdir()
    names = ["中" * 83 + ".txt", "é" * 125 + ".md", "a" * 255, "🙂" * 62 + ".md"]
    for index, name in enumerate(names):
        (folder / name).write_text(f"File number {index} with a name of {len(name.encode())} bytes.\n", "utf-8")
    env = {**os.environ, "ZHIKU_HOME": str(tmp_path / "home"), "COLUMNS": "300"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ZHIKU, *args], env=env, capture_output=True, text=True, timeout=600, check=False)

    assert run("kb", "create", "长名").returncode == 0
    ingested = run("ingest", str(folder), "--kb", "长名")
    TALLY["tried"] += 1
    assert ingested.returncode == 0, ingested.stderr
    listed = run("docs", "list", "--kb", "长名")
    assert listed.stdout.count("ready") == len(names), listed.stdout
