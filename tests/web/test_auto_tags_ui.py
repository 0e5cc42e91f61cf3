"""Auto-tags through a real `zhiku serve`: the labels and run routes (with hostile bodies and another tenant's
key), `zhiku tags` through the server, and the Auto-tags section of a knowledge base's page in Debian's headless
Chromium. Documents: XQuAD paragraphs of three subjects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import chromium, ui_login, zhiku_server
from tests.test_cli_remote import run
from tests.web.test_similar_ui import upload_and_wait
from tests.web.test_ui import DESKTOP, Console, shoot, unlabelled_controls
from zhiku.bench.autotags import SUBJECTS, labelled_paragraphs

ADMIN = "ui-autotags-admin-key-0123456789abcdef0123"
ARTICLES = {"xq-05": "education", "xq-31": "education", "xq-20": "history", "xq-25": "history",
            "xq-12": "science and technology", "xq-39": "science and technology"}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("ui-autotags")
    with zhiku_server(workdir, auth="on", admin_api_key=ADMIN) as (url, _):
        yield url, workdir / "home"


def test_auto_tags_over_rest_cli_and_ui(server: tuple[str, Path], evaldata: Path) -> None:
    from playwright.sync_api import expect

    url, home = server
    headers = {"Authorization": f"Bearer {ADMIN}"}
    kb = httpx.post(f"{url}/api/v1/knowledge-bases", json={"name": "subjects"}, headers=headers).json()["id"]
    files = {f"{pid}.txt": text for pid, text, _ in labelled_paragraphs(evaldata, "en") if pid[:5] in ARTICLES
             and pid.endswith(("-00", "-01"))}  # fmt: skip
    assert len(files) == 12
    upload_and_wait(url, kb, files, headers)
    base = f"{url}/api/v1/knowledge-bases/{kb}/auto-tags"
    assert httpx.get(base, headers=headers).json() == {"labels": []}
    assert httpx.post(f"{base}/run", headers=headers).json() == {"documents": 0, "tagged": 0, "by_label": {}}

    # hostile bodies: precise 400s in the OpenAI error shape, and the labels unchanged
    labels = [{"name": name, "description": SUBJECTS[name][0]} for name in sorted(set(ARTICLES.values()))]
    for body in (
        {"labels": [{"name": "a"}, {"name": " A"}]},
        {"labels": [{"name": ""}]},
        {"labels": [{"name": "x" * 101}]},
        {"labels": [{"name": "ok", "description": "d" * 1001}]},
        {"labels": [{"name": "ok", "colour": "red"}]},
        {"labels": [{"name": f"l{i}"} for i in range(101)]},
        {"labels": "education"},
        {"labels": [{"name": ["a"]}]},
        {"labels": [{"name": "nul\x00"}]},
        {},
    ):
        refused = httpx.put(base, json=body, headers=headers)
        assert refused.status_code == 400, (body, refused.status_code, refused.text)
        assert refused.json()["error"]["param"]
    for raw in (b"{", b"[]", b'{"min_confidence": NaN}', b'{"min_confidence": 1.5}', b'{"min_confidence": -0.1}',
                b'{"min_confidence": "high"}', b'{"min_confidence": 1e400}', b'{"min_confidence": false}',
                b'{"min_confidence": true}', b'{"min_confidence": "0.5"}'):  # fmt: skip
        refused = httpx.post(f"{base}/run", content=raw, headers={**headers, "content-type": "application/json"})
        assert refused.status_code == 400, (raw, refused.status_code, refused.text)
    assert httpx.get(base, headers=headers).json() == {"labels": []}

    saved = httpx.put(base, json={"labels": labels}, headers=headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["labels"] == labels
    done = httpx.post(f"{base}/run", json={"min_confidence": 0.0}, headers=headers).json()
    assert done["documents"] == done["tagged"] == 12
    documents = httpx.get(f"{url}/api/v1/knowledge-bases/{kb}/documents", headers=headers).json()
    right = sum(next(iter(d["auto_tags"])) == ARTICLES[d["filename"][:5]] for d in documents)
    assert right >= 9, [(d["filename"], d["auto_tags"]) for d in documents]
    assert all(set(d["auto_tags"]) <= set(d["tags"]) for d in documents)

    # another tenant's key sees none of it
    other = run(home, "keys", "create", "--tenant", "tenant-b", "--scope", "admin")
    outsider = {"Authorization": f"Bearer {other.stdout.strip()}"}
    assert httpx.get(base, headers=outsider).status_code == 404
    assert httpx.put(base, json={"labels": []}, headers=outsider).status_code == 404
    assert httpx.post(f"{base}/run", headers=outsider).status_code == 404

    # the CLI through the running server
    shown = run(home, "tags", "labels", "--kb", "subjects", ZHIKU_API_KEY=ADMIN)
    assert shown.returncode == 0, shown.stderr
    assert "science and technology" in shown.stdout
    ran = run(home, "tags", "run", "--kb", "subjects", "--json", ZHIKU_API_KEY=ADMIN)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["documents"] == 12
    assert 0 < summary["tagged"] <= 12
    listed = run(home, "docs", "list", "--kb", "subjects", ZHIKU_API_KEY=ADMIN)
    assert "education (0." in listed.stdout or "history (0." in listed.stdout, listed.stdout
    bad = run(home, "tags", "labels", "--kb", "subjects", "--label", ": no name", ZHIKU_API_KEY=ADMIN)
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr

    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-US")
        ui_login(context, url, ADMIN)
        page = context.new_page()
        page.set_default_timeout(60_000)
        console = Console(page)
        page.goto(f"{url}/#/kb/{kb}")
        box = page.get_by_label("Labels, one per line: name: what it means")
        expect(box).to_have_value("\n".join(f"{item['name']}: {item['description']}" for item in labels))
        assert unlabelled_controls(page) == []
        box.fill("education: schools, universities and teaching\nhistory: wars, plagues and empires of the past\n"
                 "science and technology: chemistry, biology, physics and engineering")  # fmt: skip
        page.get_by_role("button", name="Tag documents").click()
        expect(page.locator("#auto-tag-result")).to_contain_text("of 12 documents")
        chips = page.locator("table.documents .tag.auto")
        expect(chips.first).to_be_visible()
        assert chips.count() >= 6
        shoot(page, "auto-tags")
        assert console.problems == []
        context.close()
    described = httpx.get(base, headers=headers).json()["labels"]
    assert described[1] == {"name": "history", "description": "wars, plagues and empires of the past"}
