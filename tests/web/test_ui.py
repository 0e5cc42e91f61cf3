"""The web UI end to end: Playwright drives Debian's headless Chromium against a real `zhiku serve` with the
default model. Screenshots of every page at desktop and phone widths go to $ZHIKU_TEST_ARTIFACTS (default
./test-artifacts/ui, not committed)."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT, UI_PASSWORD, chromium, create_person, ui_login, zhiku_server

ADMIN = "ui-admin-key-0123456789abcdef0123456789ab"
ARTIFACTS = Path(os.environ.get("ZHIKU_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
DESKTOP = {"width": 1280, "height": 800}
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


class Console:
    """What a page reports that it should not: console errors, uncaught exceptions, failed or refused requests."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: self.problems.append(f"exception: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def _failed(self, request: Any) -> None:
        if "ERR_ABORTED" not in (request.failure or ""):  # not the UI's own cancelling of a left page's stream
            self.problems.append(f"failed: {request.url} {request.failure}")

    def take(self) -> list[str]:
        """The problems so far, forgetting them."""
        problems, self.problems = self.problems, []
        return problems


def site_folder(root: Path) -> Path:
    """A folder of three pages all named source.html, in different subfolders (as a static site has them)."""
    pages = {
        "en/source.html": ("Installing", "Run the installer, then open the settings page to add an API key."),
        "zh/source.html": ("安装", "运行安装程序，然后打开设置页面添加 API 密钥。中文字体和西文字体分开设置。"),
        "zh/archive/source.html": ("旧版安装", "旧版本需要手动复制文件到程序目录，再重新启动服务。"),
    }
    folder = root / "site"
    for relative, (title, text) in pages.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"<!doctype html><html><head><title>{title}</title></head><body><main><h1>{title}</h1>"
                          f"<p>{text}</p><p>{text}</p></main></body></html>", "utf-8")  # fmt: skip
    return folder


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
    console = Console(page)
    unauthorised: list[str] = []
    page.on("response", lambda r: unauthorised.append(r.url) if r.status == 401 else None)

    # not logged in: the login page, saying where a first login comes from; no raw API error, no alert
    create_person(server, ADMIN, "Ada@Example.org", "admin")
    page.goto(server)
    form = page.locator("#login-form")
    expect(form).to_contain_text("./scripts/run")
    expect(form).to_contain_text("zhiku users create")
    expect(page.locator("#alert")).to_be_hidden()
    assert "{" not in page.locator("main").inner_text()
    assert all("401" in problem for problem in console.take())  # only the API's refusal, no other error
    assert unlabelled_controls(page) == []
    shoot(page, "login")
    page.get_by_label("User name or e-mail").fill("ada@example.org")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    assert page.get_by_label("Password").input_value() == ""
    page.get_by_label("Password").fill(UI_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("No knowledge bases yet")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("ada@example.org (admin)")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["zhiku_session"]["httpOnly"]
    assert cookies["zhiku_session"]["sameSite"] == "Strict"
    assert "zhiku_session" not in page.evaluate("document.cookie")  # page scripts cannot read the session
    assert page.evaluate("JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})").count("zk-") == 0

    # Settings: the person's own API keys (a new one shown once), the team's people and the audit log (admins)
    page.get_by_role("link", name="Settings").click()
    keys = page.locator("#keys")
    expect(keys).to_contain_text("You have no API keys.")
    keys.get_by_label("Name").fill("nightly import")
    keys.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key code")).to_have_text(re.compile(r"^zk-"))
    expect(page.locator("#my-keys")).to_contain_text("nightly import")
    people = page.locator("#people")
    people.get_by_label("User name or e-mail").fill("bo")
    people.locator("#invite-form").get_by_label("Role").select_option("editor")
    people.get_by_role("button", name="Invite").click()
    expect(page.locator("#invite-password code")).to_be_visible()
    expect(page.locator('#people tr[data-login="bo"]')).to_contain_text("enabled")
    expect(page.locator("#audit")).to_contain_text("account.create")
    expect(page.locator("#audit")).to_contain_text("key.create")
    assert page.get_by_label("Role of ada@example.org").is_disabled()  # nobody demotes themselves
    assert unlabelled_controls(page) == []
    shoot(page, "settings")

    # focus moves to the new page's content after navigation, with no ring around all of it; keyboard focus shows
    page.get_by_role("link", name="Knowledge bases").click()
    expect(page.get_by_text("No knowledge bases yet")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "none"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "INPUT"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    unauthorised.clear()
    page.get_by_label("Name", exact=True).fill("手册")
    page.get_by_label("Chunk size (tokens)").fill("128")
    assert unlabelled_controls(page) == []
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Documents of 手册")).to_be_visible()

    pdf = evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf"
    docx = evaldata / "docs" / "docx-python-docx" / "par-known-paragraphs.docx"
    page.locator("#file-input").set_input_files([str(pdf), str(docx)])
    page.locator("#folder-input").set_input_files(str(site_folder(tmp_path)))
    saw_progress = False
    for _ in range(600):  # watch the progress bars fill until all five documents are ready
        statuses = page.eval_on_selector_all("tbody tr", "rows => rows.map(r => r.dataset.status)")
        saw_progress = saw_progress or any(s in ("queued", "parsing", "embedding", "uploading") for s in statuses)
        if statuses.count("ready") == 5:
            break
        page.wait_for_timeout(250)
    assert saw_progress
    faq = page.locator('tr[data-file="ctex-faq.pdf"]')
    expect(faq).to_have_attribute("data-status", "ready")
    expect(page.locator('tr[data-file="par-known-paragraphs.docx"]')).to_have_attribute("data-status", "ready")
    expect(faq).to_contain_text("41 pages")
    expect(faq.locator("td.size")).to_have_text(re.compile(r"^[\d.,]+ (KB|MB)$"))
    expect(faq.locator("td.chunks")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(faq.locator("td.added")).to_contain_text(str(datetime.date.today().year))
    # the same name in three folders: three rows that say which folder each is from
    same = page.locator('tr[data-file="source.html"]')
    expect(same).to_have_count(3)
    assert sorted(same.locator(".path").all_inner_texts()) == ["site/en/", "site/zh/", "site/zh/archive/"]
    for row in same.all():
        expect(row).to_have_attribute("data-status", "ready")
        expect(row.locator("td.chunks")).to_have_text(re.compile(r"^[1-9]\d*$"))
        expect(row.locator("td.size")).to_have_text(re.compile(r"^\d+ B$"))
    table = page.locator("table.documents").inner_text()
    assert not re.search(r"\b1 pages\b", table), table
    if re.search(r"\b1 page\b", table) is None:  # the one-page documents say so in the singular
        assert "page" not in table.replace("41 pages", ""), table

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
    # a short snippet per result (a few lines, never the whole chunk): several results above the fold
    above = page.eval_on_selector_all(
        "#results .hit", "hits => hits.filter(h => h.getBoundingClientRect().bottom <= innerHeight).length"
    )
    assert above >= 3, f"{above} results above the fold at 1280x800"
    lines = page.eval_on_selector_all(
        "#results .snippet",
        "s => s.map(e => e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight))",
    )
    assert max(lines) <= 3.05, lines
    # highlights are whole words: no mark starts or ends inside a Latin word
    cut = page.evaluate("""() => [...document.querySelectorAll('#results mark')].filter(m => {
        const before = (m.previousSibling && m.previousSibling.textContent || '').slice(-1);
        const after = (m.nextSibling && m.nextSibling.textContent || '').slice(0, 1);
        return /[A-Za-z0-9]/.test(before) || /[A-Za-z0-9]/.test(after);
    }).map(m => m.parentElement.textContent)""")
    assert cut == []
    assert unlabelled_controls(page) == []
    shoot(page, "search")
    first.click()
    dialog = page.locator("#viewer")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_contain_text("page 5 of 41")
    expect(dialog.locator("#viewer-hit")).to_contain_text("CTEX")
    shoot(page, "viewer")
    page.go_back()  # leaving the page (here: the browser's Back) closes the passage
    expect(dialog).to_be_hidden()
    page.go_forward()
    expect(page.get_by_role("search")).to_be_visible()

    # chat: without a chat model the page says so before anything is asked; an error shows once, no empty Sources
    page.get_by_role("link", name="Chat").click()
    notice = page.locator("#chat-notice")
    expect(notice).to_contain_text("ZHIKU_CHAT_URL")
    expect(page.locator("#sources-heading")).to_be_hidden()
    page.get_by_label("Your question").fill("CTEX 是什么？")
    ask = page.get_by_role("button", name="Ask")
    ask.click()
    expect(ask).to_be_enabled()
    expect(page.locator("#answer .muted")).to_have_count(0)  # no longer "Retrieving and answering…"
    # the server answers with the passages it found, labelled, each with its text under its citation
    expect(page.locator("#answer .passages-only")).to_contain_text("these are the passages that best match")
    expect(page.locator(".error-text")).to_have_count(0)
    expect(page.locator("#sources-heading")).to_be_visible()
    expect(page.locator("#sources li").first).to_contain_text("CTEX")
    expect(page.locator("#sources li .snippet").first).to_be_visible()
    shoot(page, "chat")

    # a clean load: no console error, no failed request, the favicon served (no /favicon.ico 404)
    console.take()
    page.goto(server + "/#/kbs")
    page.reload()
    expect(page.locator('[data-kb="手册"]')).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert console.take() == []
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).headers["content-type"].startswith("image/svg+xml")
    assert page.request.get(server + "/favicon.ico").ok
    page.goto(server + "/docs")
    expect(page.locator(".swagger-ui .info")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.querySelector('link[rel=icon]').getAttribute('href')") == "/static/favicon.svg"
    assert console.take() == []
    page.goto(server)

    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Language").select_option("zh")
    expect(page.get_by_role("link", name="知识库")).to_be_visible()
    page.get_by_label("主题").select_option("dark")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.get_by_role("link", name="知识库").click()
    expect(page.locator('[data-kb="手册"]')).to_contain_text("6 个文档 (5 就绪)")
    shoot(page, "knowledge-bases-zh-dark")
    page.locator('[data-kb="手册"] h2 a').click()
    expect(page.locator('tr[data-file="ctex-faq.pdf"]')).to_contain_text("41 页")
    shoot(page, "documents-zh-dark")
    page.get_by_role("link", name="问答").click()
    expect(page.locator("#chat-notice")).to_contain_text("没有配置问答模型")
    page.reload()
    expect(page.locator("#chat-notice")).to_be_visible()
    page.keyboard.press("Tab")  # keyboard navigation reaches the skip link first
    assert page.evaluate("document.activeElement.className") == "skip"
    assert [p for p in console.take() if not p.startswith("HTTP 4")] == []
    context.close()


def test_an_ended_session_leads_to_the_login_page_and_logging_out_ends_it(server: str, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    domain = server.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "zhiku_session", "value": "not-a-session-of-this-server", "domain": domain,
                          "path": "/"}])  # fmt: skip
    context.add_init_script("localStorage.setItem('zhiku.key', 'zk-left-by-an-earlier-version')")
    page = context.new_page()
    page.goto(server + "/#/search")
    expect(page.locator("#login-form")).to_contain_text("zhiku users create")  # in Chinese, the commands as they are
    assert page.evaluate("localStorage.getItem('zhiku.key')") is None  # an old UI's stored key is wiped
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    expect(page.locator("#alert")).to_be_hidden()
    context.clear_cookies()
    ui_login(context, server, ADMIN, role="reader")
    page.goto(server + "/#/settings")
    page.reload()  # the same page (only the #fragment changed): load it again, now with the session
    expect(page.locator("#keys")).to_be_visible()
    expect(page.locator("#people")).to_have_count(0)  # a reader manages no one
    session = next(c["value"] for c in context.cookies() if c["name"] == "zhiku_session")
    page.get_by_role("button", name="退出登录").click()
    expect(page.locator("#login-form")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "zhiku_session"]
    import httpx

    replay = httpx.get(f"{server}/api/v1/knowledge-bases", cookies={"zhiku_session": session})
    assert replay.status_code == 401  # logging out ended the session on the server, not only in the browser
    context.close()


def test_what_the_ui_asks_the_server(server: str) -> None:
    import httpx

    assert httpx.get(f"{server}/api/v1/ui").status_code == 401  # behind a key like the rest of /api
    facts = httpx.get(f"{server}/api/v1/ui", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert facts == {"chat": {"configured": False, "model": None}}
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = httpx.get(server + path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.text.startswith("<svg")
