"""The web UI's near-duplicates page: from a knowledge base's documents to its groups (an English paragraph with
its Chinese translation, a paragraph with an edited copy) shown side by side, chunks too, and "keep this one".
Playwright drives Debian's headless Chromium against a real `zhiku serve` with the default model."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import chromium, ui_login, zhiku_server
from tests.web.test_ui import DESKTOP, Console, shoot, unlabelled_controls
from zhiku.bench.duplicates import edited_copy, load_corpus

ADMIN = "ui-dedup-admin-key-0123456789abcdef012345"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with zhiku_server(tmp_path_factory.mktemp("ui-dedup"), auth="on", admin_api_key=ADMIN) as (url, _):
        yield url


def test_groups_side_by_side_and_keep_this_one(server: str, evaldata: Path) -> None:
    from playwright.sync_api import expect

    en, zh = load_corpus(evaldata, "en"), load_corpus(evaldata, "zh")
    files = {"complexity.txt": en["xq-04-00"], "复杂性理论.txt": zh["xq-04-00"], "sky-tv.txt": en["xq-08-00"],
             "sky-tv (edited).txt": edited_copy(en["xq-08-00"], random.Random(3)),  # noqa: S311 - reproducible
             "other.txt": en["xq-01-00"]}  # fmt: skip
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server, headers=headers, timeout=120) as http:
        body = {"name": "near", "chunk_tokens": 64, "chunk_overlap": 0}
        kb = http.post("/api/v1/knowledge-bases", json=body).json()["id"]
        parts = [("files", (name, text.encode(), "text/plain")) for name, text in files.items()]
        assert http.post(f"/api/v1/knowledge-bases/{kb}/documents", files=parts).status_code == 201
        deadline = time.monotonic() + 300
        while not all(d["status"] == "ready" for d in http.get(f"/api/v1/knowledge-bases/{kb}/documents").json()):
            assert time.monotonic() < deadline
            time.sleep(0.5)
    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-US")
        ui_login(context, server, ADMIN)
        page = context.new_page()
        page.set_default_timeout(60_000)
        console = Console(page)
        page.goto(f"{server}/#/kb/{kb}")
        # the flag ingestion gave: on the document's row, a link to the near-duplicates view
        flag = page.locator("table.documents tr[data-file='sky-tv (edited).txt'] .near-duplicate a")
        expect(flag).to_contain_text("Near-duplicate of sky-tv.txt (copy, similarity")
        expect(page.locator("table.documents tr[data-file='other.txt'] .near-duplicate")).to_have_count(0)
        shoot(page, "duplicate-flags")
        page.get_by_role("link", name="Near-duplicates", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Near-duplicates in near")
        groups = page.locator(".dup-group")
        expect(groups).to_have_count(2)
        translation = page.locator(".dup-group[data-kinds='translation']")
        expect(translation.locator(".dup-member")).to_have_count(2)
        expect(translation.locator(".dup-kind")).to_have_text("translation")
        chinese = translation.locator(".dup-member[data-file='复杂性理论.txt']")
        expect(chinese.locator(".dup-text")).to_have_attribute("lang", "zh")
        expect(chinese).to_contain_text("Chinese")
        copy = page.locator(".dup-group[data-kinds='copy']")
        expect(copy.locator(".dup-member h3")).to_have_text(["sky-tv.txtoldest", "sky-tv (edited).txt"])
        # side by side: the members' columns share a row at desktop width
        boxes = [copy.locator(".dup-member").nth(i).bounding_box() for i in range(2)]
        assert boxes[0] is not None
        assert boxes[1] is not None
        assert boxes[0]["y"] == boxes[1]["y"]
        assert boxes[0]["x"] < boxes[1]["x"]
        assert unlabelled_controls(page) == []
        shoot(page, "duplicates")

        # passages: the chunk level, through the form
        page.get_by_label("Compare").select_option("chunks")
        page.get_by_role("button", name="Find").click()
        expect(page).to_have_url(f"{server}/#/kb/{kb}/duplicates?level=chunks")
        expect(page.locator(".dup-member .dup-facts").first).to_contain_text("passage")
        expect(page.get_by_role("button", name="Keep this one: sky-tv.txt")).to_have_count(0)  # documents only
        # a threshold the server refuses: its message, and no groups
        page.evaluate("document.querySelector('#dup-form input[name=threshold]').removeAttribute('min')")
        page.get_by_label("Threshold (0.5–1)").fill("0.2")
        page.get_by_role("button", name="Find").click()
        expect(page.locator("#alert")).to_contain_text("threshold: Input should be greater than or equal to 0.5")
        console.take()  # the refused request is what this step is about

        # keep the Chinese version: the English one goes, the group with it
        page.goto(f"{server}/#/kb/{kb}/duplicates")
        expect(groups).to_have_count(2)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Keep this one: 复杂性理论.txt").click()
        expect(groups).to_have_count(1)
        expect(page.locator(".dup-group[data-kinds='translation']")).to_have_count(0)
        names = [d["filename"] for d in httpx.get(f"{server}/api/v1/knowledge-bases/{kb}/documents",
                                                    headers=headers).json()]  # fmt: skip
        assert sorted(names) == sorted(["复杂性理论.txt", "sky-tv.txt", "sky-tv (edited).txt", "other.txt"])

        # in Chinese
        page.evaluate("localStorage.setItem('zhiku.lang', 'zh')")
        page.reload()
        expect(page.get_by_role("heading", level=1)).to_have_text("near 中的近似重复")
        expect(page.locator(".dup-kind")).to_have_text("副本")
        shoot(page, "duplicates-zh")
        assert console.take() == []
        context.close()
