"""The web UI end to end: Playwright drives Debian's headless Chromium against a real `zhiku serve` with the
default model. Screenshots of every page at desktop and phone widths go to $ZHIKU_TEST_ARTIFACTS (default
./test-artifacts/ui, not committed)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT, chromium, zhiku_server

ADMIN = "ui-admin-key-0123456789abcdef0123456789ab"
ARTIFACTS = Path(os.environ.get("ZHIKU_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with zhiku_server(tmp_path_factory.mktemp("ui"), auth="on", admin_api_key=ADMIN) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def shoot(page: Any, name: str) -> None:
    """Save the page at desktop and phone widths; at phone width nothing may overflow sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{name}: {overflow}px horizontal overflow at 375 px"
    page.set_viewport_size(DESKTOP)


def unlabelled_controls(page: Any) -> list[str]:
    return list(
        page.evaluate("""() => [...document.querySelectorAll('main input, main select, main textarea')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map(el => el.outerHTML.slice(0, 80))""")
    )


def test_create_upload_search_open_switch_language_and_errors(server: str, browser: Any, evaldata: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    unauthorised: list[str] = []
    page.on("response", lambda r: unauthorised.append(r.url) if r.status == 401 else None)

    # without a key: a readable message, not a blank page
    page.goto(server)
    expect(page.locator("#alert")).to_be_visible()
    expect(page.locator("#alert-text")).to_contain_text("API key")

    page.get_by_role("link", name="Settings").click()
    page.get_by_label("API key").fill(ADMIN)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    assert unlabelled_controls(page) == []
    shoot(page, "settings")

    page.get_by_role("link", name="Knowledge bases").click()
    expect(page.get_by_text("No knowledge bases yet")).to_be_visible()
    unauthorised.clear()
    page.get_by_label("Name", exact=True).fill("手册")
    page.get_by_label("Chunk size (tokens)").fill("128")
    assert unlabelled_controls(page) == []
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Documents of 手册")).to_be_visible()

    pdf = evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf"
    docx = evaldata / "docs" / "docx-python-docx" / "par-known-paragraphs.docx"
    page.locator("#file-input").set_input_files([str(pdf), str(docx)])
    saw_progress = False
    for _ in range(600):  # watch the progress bars fill until both documents are ready
        statuses = page.eval_on_selector_all("tbody tr", "rows => rows.map(r => r.dataset.status)")
        saw_progress = saw_progress or any(s in ("queued", "parsing", "embedding", "uploading") for s in statuses)
        if statuses.count("ready") == 2:
            break
        page.wait_for_timeout(250)
    assert saw_progress
    expect(page.locator('tr[data-file="ctex-faq.pdf"]')).to_have_attribute("data-status", "ready")
    expect(page.locator('tr[data-file="par-known-paragraphs.docx"]')).to_have_attribute("data-status", "ready")
    expect(page.locator('tr[data-file="ctex-faq.pdf"]')).to_contain_text("41 pages")

    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis file is damaged beyond repair")
    page.locator("#file-input").set_input_files(str(broken))
    row = page.locator('tr[data-file="broken.pdf"]')  # refused by the upload's structural check: no job
    expect(row).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(row.locator(".error-text")).to_contain_text(re.compile("PDF", re.IGNORECASE))
    scan = evaldata / "pdf" / "py-pdf-sample-files" / "019-grayscale-image" / "grayscale-image.pdf"
    page.locator("#file-input").set_input_files(str(scan))
    row = page.locator('tr[data-file="grayscale-image.pdf"]')  # a sound PDF whose job fails: it has no text layer
    expect(row).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(row.locator(".error-text")).to_contain_text("OCR")
    expect(row.get_by_role("button", name="Retry")).to_be_visible()
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#file-input").set_input_files(str(png))
    expect(page.locator('tr[data-file="photo.png"] .error-text')).to_contain_text("not a supported document type")
    shoot(page, "documents")

    page.get_by_role("link", name="Search this knowledge base").click()
    page.get_by_label("Question or keywords").fill("CTEX 是一个关于 TEX 的中文网站")
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator("#results .hit").first
    expect(first).to_be_visible()
    assert unauthorised == []
    expect(page.locator("#alert")).to_be_hidden()  # the first page's error went away once a key was set
    expect(first).to_contain_text("ctex-faq.pdf")
    expect(first).to_contain_text("page 5")
    expect(first.locator("mark").first).to_be_visible()
    assert unlabelled_controls(page) == []
    shoot(page, "search")
    first.click()
    dialog = page.locator("#viewer")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_contain_text("page 5 of 41")
    expect(dialog.locator("#viewer-hit")).to_contain_text("CTEX")
    shoot(page, "viewer")
    dialog.get_by_role("button", name="Close").click()

    page.get_by_role("link", name="Chat").click()
    page.get_by_label("Your question").fill("CTEX 是什么？")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#answer")).to_contain_text("ZHIKU_CHAT_URL")
    shoot(page, "chat")

    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Language").select_option("zh")
    expect(page.get_by_role("link", name="知识库")).to_be_visible()
    page.get_by_label("主题").select_option("dark")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.get_by_role("link", name="知识库").click()
    expect(page.locator('[data-kb="手册"]')).to_contain_text("3 个文档 (2 就绪)")
    shoot(page, "knowledge-bases-zh-dark")
    page.reload()
    expect(page.locator('[data-kb="手册"]')).to_be_visible()
    page.keyboard.press("Tab")  # keyboard navigation reaches the skip link first
    assert page.evaluate("document.activeElement.className") == "skip"
    assert errors == []
    context.close()
