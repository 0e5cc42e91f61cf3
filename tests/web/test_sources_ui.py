"""The web UI's sources: add a git repository (served over loopback by `git daemon`) on a knowledge base's page,
then a commit and the Sync button: the changed file gets a new version, the deleted one's row goes, the result
says what happened. Playwright drives Debian's headless Chromium against a real `zhiku serve`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ingest.test_git_sources import commit_all, git, git_daemon
from tests.servers import chromium, ui_login, zhiku_server
from tests.web.test_ui import DESKTOP, Console, shoot, unlabelled_controls

ADMIN = "ui-sources-admin-key-0123456789abcdef0123"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = {"auth": "on", "admin_api_key": ADMIN, "source_allow_private": "true"}
    with zhiku_server(tmp_path_factory.mktemp("ui-sources"), **settings) as (url, _):
        yield url


def test_add_a_repository_and_sync_it_from_the_ui(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    repo = tmp_path / "served" / "wiki"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "welcome.md").write_text("# Welcome\n\nThe wiki starts here.\n")
    (repo / "howto.md").write_text("# How to\n\nOpen a ticket for access requests.\n")
    commit_all(repo, "first")
    headers = {"Authorization": f"Bearer {ADMIN}"}
    kb = httpx.post(f"{server}/api/v1/knowledge-bases", json={"name": "wiki"}, headers=headers).json()["id"]
    with git_daemon(repo.parent) as daemon, chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-US")
        ui_login(context, server, ADMIN)
        page = context.new_page()
        page.set_default_timeout(60_000)
        console = Console(page)
        page.goto(f"{server}/#/kb/{kb}")
        expect(page.get_by_role("heading", name="Sources kept in sync")).to_be_visible()
        page.get_by_label("Repository URL").fill(f"{daemon}/wiki")
        assert unlabelled_controls(page) == []
        page.get_by_role("button", name="Add repository").click()
        source = page.locator("#kb-sources li")
        expect(source).to_have_count(1)
        expect(source.locator(".sync-result")).to_have_text("2 added, 0 changed, 0 removed, 0 unchanged, 0 skipped")
        expect(source).to_contain_text(f"{daemon}/wiki")
        rows = page.locator("table.documents tbody tr[data-status='ready']")
        expect(rows).to_have_count(2)
        shoot(page, "sources")

        (repo / "howto.md").write_text("# How to\n\nAccess requests now go through the portal.\n")
        (repo / "welcome.md").unlink()
        head = commit_all(repo, "second")
        source.get_by_role("button", name="Sync").click()
        expect(page.locator("#kb-sources li .sync-result")).to_have_text(
            "0 added, 1 changed, 1 removed, 0 unchanged, 0 skipped"
        )
        expect(page.locator("#kb-sources li")).to_contain_text(head[:10])
        expect(page.locator("table.documents tbody tr[data-file='welcome.md']")).to_have_count(0)
        deadline = time.monotonic() + 120
        while True:  # the new version is ingested in the background; the row follows the job events
            documents = httpx.get(f"{server}/api/v1/knowledge-bases/{kb}/documents", headers=headers).json()
            if [(d["filename"], d["version"], d["status"]) for d in documents] == [("howto.md", 2, "ready")]:
                break
            assert time.monotonic() < deadline, documents
            time.sleep(0.5)
        expect(page.locator("table.documents tbody tr[data-file='howto.md']")).to_have_attribute("data-status", "ready")
        assert console.take() == []
        context.close()


def test_a_hostile_url_in_the_ui_is_refused_with_the_servers_message(server: str) -> None:
    """The form shows the server's reason (here: a file:// URL) and remembers nothing."""
    from playwright.sync_api import expect

    headers = {"Authorization": f"Bearer {ADMIN}"}
    kb = httpx.post(f"{server}/api/v1/knowledge-bases", json={"name": "hostile"}, headers=headers).json()["id"]
    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP, locale="en-US")
        ui_login(context, server, ADMIN)
        page: Any = context.new_page()
        page.goto(f"{server}/#/kb/{kb}")
        page.get_by_label("Repository URL").fill("file:///etc")
        page.get_by_role("button", name="Add repository").click()
        expect(page.locator("#alert")).to_contain_text("scheme is not allowed")
        expect(page.locator("#kb-sources li")).to_have_count(0)
        context.close()
