"""The topic map in the web UI: six XQuAD articles (five paragraphs each, in English and Chinese) uploaded to a real
`zhiku serve`; the map shows a dot per document coloured by cluster, a cluster chosen by click or keyboard lists its
documents and links to a search for its terms; the page speaks Chinese too. Playwright drives Debian's headless
Chromium; screenshots go to the UI artifacts folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.knowledge.test_topics import paragraphs
from tests.servers import chromium, ui_login, zhiku_server
from tests.web.test_ui import DESKTOP, Console, shoot, unlabelled_controls

ADMIN = "ui-topics-admin-key-0123456789abcdef01234"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with zhiku_server(tmp_path_factory.mktemp("ui-topics"), auth="on", admin_api_key=ADMIN) as (url, _):
        yield url


def test_the_topic_map_shows_clusters_and_their_documents(server: str, evaldata: Path) -> None:
    from playwright.sync_api import expect

    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server, headers=headers, timeout=300) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "xquad"}).json()["id"]
        files = [
            ("files", (f"{language}-{pid}.txt", text.encode(), "text/plain"))
            for language in ("en", "zh")
            for pid, text in paragraphs(evaldata, language).items()
        ]
        assert client.post(f"/api/v1/knowledge-bases/{kb}/documents", files=files).status_code == 201
        deadline = time.monotonic() + 300
        while any(d["status"] != "ready" for d in client.get(f"/api/v1/knowledge-bases/{kb}/documents").json()):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        expected = client.get(f"/api/v1/knowledge-bases/{kb}/topics").json()
    tesla = next(c for c in expected["clusters"] if "tesla" in c["terms"])

    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-US")
        ui_login(context, server, ADMIN)
        page = context.new_page()
        page.set_default_timeout(60_000)
        console = Console(page)
        page.goto(f"{server}/#/kb/{kb}")
        page.get_by_role("link", name="Topic map").click()
        expect(page.get_by_role("heading", name="Topics of xquad")).to_be_visible()
        expect(page.locator("svg.topic-map circle")).to_have_count(60)
        expect(page.locator("svg.topic-map g.cluster")).to_have_count(len(expected["clusters"]))
        expect(page.locator(".topic-list button")).to_have_count(len(expected["clusters"]))
        expect(page.get_by_text(f"60 documents in {len(expected['clusters'])} topics")).to_be_visible()
        assert unlabelled_controls(page) == []

        # a click on the cluster's button: its documents, the others dimmed on the map
        button = page.locator(f".topic-list button[data-cluster='{tesla['id']}']")
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        panel = page.locator("#topic-panel")
        expect(panel.get_by_role("heading")).to_have_text(tesla["name"])
        expect(panel.locator("li")).to_have_count(tesla["size"])
        expect(panel.locator("li").first).to_contain_text("xq-03-")
        expect(page.locator("svg.topic-map g.cluster.dimmed")).to_have_count(len(expected["clusters"]) - 1)
        shoot(page, "topics")

        # the keyboard: a cluster on the map is a button
        other = next(c for c in expected["clusters"] if c["id"] != tesla["id"])
        group = page.locator(f"svg.topic-map g.cluster[data-cluster='{other['id']}']")
        group.focus()
        page.keyboard.press("Enter")
        expect(panel.locator("li")).to_have_count(other["size"])
        expect(page.locator(f".topic-list button[data-cluster='{other['id']}']")).to_have_attribute(
            "aria-pressed", "true"
        )
        # its search link: the knowledge base searched for the cluster's terms
        panel.get_by_role("link", name="Search this knowledge base for these terms").click()
        expect(page.locator("input[name=query]")).to_have_value(" ".join(other["terms"]))

        # a number of clusters asked for, and one too many: the server's reason beside the form
        page.goto(f"{server}/#/kb/{kb}/topics")
        page.get_by_label("Clusters").fill("6")
        page.get_by_role("button", name="Show").click()
        expect(page.locator(".topic-list button")).to_have_count(6)
        page.get_by_label("Clusters").fill("61")
        page.get_by_role("button", name="Show").click()
        expect(page.get_by_role("alert").filter(has_text="at most the number of ready documents (60)")).to_be_visible()
        console.take()  # the refused request (HTTP 400) was the point
        context.close()

        context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
        ui_login(context, server, ADMIN)
        page = context.new_page()
        console = Console(page)
        page.goto(f"{server}/#/kb/{kb}/topics")
        expect(page.get_by_role("heading", name="xquad 的主题")).to_be_visible()
        page.locator(f".topic-list button[data-cluster='{tesla['id']}']").click()
        expect(page.locator("#topic-panel")).to_contain_text("特斯拉")
        shoot(page, "topics-zh")
        assert console.take() == []
        context.close()
