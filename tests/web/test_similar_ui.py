"""Similar documents ("more like this") through a real `zhiku serve`: the REST route (with hostile parameters and
another tenant's key), `zhiku docs similar` through the server, and the Similar button of the web UI in Debian's
headless Chromium. Documents: XQuAD paragraphs in English and Chinese (a translation must come first)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import chromium, ui_login, zhiku_server
from tests.test_cli_remote import run
from tests.web.test_ui import DESKTOP, Console, shoot

ADMIN = "ui-similar-admin-key-0123456789abcdef01234"


def paragraph(evaldata: Path, language: str, paragraph_id: str) -> str:
    with (evaldata / "retrieval" / f"xquad-{language}" / "corpus.jsonl").open(encoding="utf-8") as lines:
        return next(json.loads(line)["text"] for line in lines if json.loads(line)["_id"] == paragraph_id)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("ui-similar")
    with zhiku_server(workdir, auth="on", admin_api_key=ADMIN) as (url, _):
        yield url, workdir / "home"


def upload_and_wait(server: str, kb: str, files: dict[str, str], headers: dict[str, str]) -> dict[str, str]:
    """Upload ``files`` (name → text), wait until they are ready; their ids by name."""
    parts = [("files", (name, text.encode("utf-8"), "text/plain")) for name, text in files.items()]
    outcomes = httpx.post(f"{server}/api/v1/knowledge-bases/{kb}/documents", files=parts, headers=headers).json()
    ids = {o["filename"]: o["document_id"] for o in outcomes}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        listed = httpx.get(f"{server}/api/v1/knowledge-bases/{kb}/documents", headers=headers).json()
        if len(listed) == len(files) and all(d["status"] == "ready" for d in listed):
            return ids
        time.sleep(0.5)
    raise AssertionError(f"documents not ready: {listed}")


def test_similar_documents_over_rest_cli_and_ui(server: tuple[str, Path], evaldata: Path) -> None:
    from playwright.sync_api import expect

    url, home = server
    headers = {"Authorization": f"Bearer {ADMIN}"}
    kb = httpx.post(f"{url}/api/v1/knowledge-bases", json={"name": "xquad"}, headers=headers).json()["id"]
    files = {
        "tesla-en.txt": paragraph(evaldata, "en", "xq-03-00"),
        "tesla-zh.txt": paragraph(evaldata, "zh", "xq-03-00"),
        "warsaw-en.txt": paragraph(evaldata, "en", "xq-01-00"),
        "normans-zh.txt": paragraph(evaldata, "zh", "xq-02-00"),
    }
    ids = upload_and_wait(url, kb, files, headers)
    base = f"{url}/api/v1/knowledge-bases/{kb}/documents"

    found = httpx.get(f"{base}/{ids['tesla-en.txt']}/similar", headers=headers)
    assert found.status_code == 200, found.text
    names = [item["document"]["filename"] for item in found.json()]
    assert names[0] == "tesla-zh.txt"
    assert len(names) == 3
    assert "tesla-en.txt" not in names
    scores = [item["score"] for item in found.json()]
    assert scores == sorted(scores, reverse=True)
    assert -1 <= scores[-1] <= scores[0] <= 1
    short = httpx.get(f"{base}/{ids['tesla-en.txt'][:10]}/similar", params={"top_k": 1}, headers=headers).json()
    assert [item["document"]["filename"] for item in short] == ["tesla-zh.txt"]

    # hostile parameters and ids: precise 4xx in the OpenAI error shape, never a 5xx
    for top_k in ("0", "-1", "101", "1e3", "abc", "", "9" * 40, "1.5"):
        refused = httpx.get(f"{base}/{ids['tesla-en.txt']}/similar", params={"top_k": top_k}, headers=headers)
        assert refused.status_code == 400, (top_k, refused.status_code, refused.text)
        assert refused.json()["error"]["param"].endswith("top_k")
    for document_id in ("nope", "0" * 32, "%00", "..%2F..%2Fetc", "x" * 300, "'; drop table documents;--"):
        missing = httpx.get(f"{base}/{document_id}/similar", headers=headers)
        assert missing.status_code in (404, 400), (document_id, missing.status_code, missing.text)
        assert "error" in missing.json()
    # another tenant's key does not see the knowledge base, nor its documents
    other = run(home, "keys", "create", "--tenant", "tenant-b", "--scope", "admin")
    assert other.returncode == 0, other.stderr
    outsider = {"Authorization": f"Bearer {other.stdout.strip()}"}
    assert httpx.get(f"{base}/{ids['tesla-en.txt']}/similar", headers=outsider).status_code == 404

    # the CLI through the running server (its discovery file in the home), as a table and as JSON
    table = run(home, "docs", "similar", ids["tesla-zh.txt"][:12], "--kb", "xquad", ZHIKU_API_KEY=ADMIN)
    assert table.returncode == 0, table.stderr
    assert "tesla-en.txt" in table.stdout
    assert "documents like tesla-zh.txt" in table.stdout
    as_json = run(
        home, "docs", "similar", ids["tesla-zh.txt"], "--kb", "xquad", "--json", "-k", "2", ZHIKU_API_KEY=ADMIN
    )
    assert as_json.returncode == 0, as_json.stderr
    assert next(row["filename"] for row in json.loads(as_json.stdout)) == "tesla-en.txt"
    assert len(json.loads(as_json.stdout)) == 2
    refused = run(home, "docs", "similar", ids["tesla-zh.txt"], "--kb", "xquad", "-k", "0", ZHIKU_API_KEY=ADMIN)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr

    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-US")
        ui_login(context, url, ADMIN)
        page = context.new_page()
        page.set_default_timeout(60_000)
        console = Console(page)
        page.goto(f"{url}/#/kb/{kb}")
        row = page.locator("table.documents tbody tr[data-file='tesla-en.txt']")
        row.get_by_role("button", name="Similar").click()
        dialog = page.locator("dialog#similar")
        expect(dialog.get_by_role("heading")).to_have_text("Documents like tesla-en.txt")
        expect(dialog.locator("li")).to_have_count(3)
        expect(dialog.locator("li").first).to_contain_text("tesla-zh.txt")
        shoot(page, "similar")
        dialog.locator("li").first.get_by_role("button", name="More like this").click()
        expect(dialog.get_by_role("heading")).to_have_text("Documents like tesla-zh.txt")
        expect(dialog.locator("li").first).to_contain_text("tesla-en.txt")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).not_to_be_visible()
        assert console.problems == []
        context.close()


def test_cli_similar_embedded(tmp_path: Path) -> None:
    """Without a server, `zhiku docs similar` opens the knowledge base itself; a document still queued is a 409
    in words."""
    home = tmp_path / "home"
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "refunds.md").write_text("# Refunds\n\nRefunds are paid within five business days.\n")
    (folder / "退款.md").write_text("# 退款\n\n退款在五个工作日内支付。\n")
    (folder / "trains.md").write_text("# Trains\n\nThe night train to Vienna leaves at ten.\n")
    assert run(home, "kb", "create", "notes").returncode == 0
    ingest = run(home, "ingest", str(folder), "--kb", "notes")
    assert ingest.returncode == 0, ingest.stderr
    listed = json.loads(run(home, "docs", "similar", _id_of(home, "refunds.md"), "--kb", "notes", "--json").stdout)
    assert [row["filename"] for row in listed] == ["退款.md", "trains.md"]
    assert listed[0]["score"] > listed[1]["score"]


def _id_of(home: Path, filename: str) -> str:
    listed = run(home, "docs", "list", "--kb", "notes")
    line = next(line for line in listed.stdout.splitlines() if filename in line)
    return line.split("│")[1].strip()
