"""Uploaded content never runs on zhiku's origin (issue #17, item 1).

A write key uploads files that carry a script; the script tries to read a key from the UI's localStorage (where the
UI once kept one), to read the session cookie, and to create an admin key with the logged-in admin's session (its
CSRF token fetched from /api/v1/auth/session, as only a script on the origin could). An admin then opens each file
the way the UI
offers ("Open the original file" in the search viewer), and a browser also navigates straight to the file URL.
In real Chromium no script may run on zhiku's origin: every file is a download, except PDFs, which only
Chromium's PDF viewer renders. The headers of the file route, the UI and /docs are checked directly too.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.servers import UI_PASSWORD, chromium, create_person, zhiku_server

ADMIN = "origin-admin-key-0123456789abcdef0123456789"
MARKER = "/pwned/"


def attack(name: str) -> str:
    """A script that reports where it runs and what it can see, and tries to create an admin key: with a key from
    localStorage, and with the page's login session (cookie sent by the browser, CSRF token read from the API)."""
    return (
        "(function () { var key = null; try { key = localStorage.getItem('zhiku.key'); } catch (e) {}"
        " var cookie = (document.cookie || '').indexOf('zhiku_session') >= 0 ? 'yes' : 'no';"
        f" document.title = 'PWNED {name}';"
        f" try {{ fetch(location.origin + '{MARKER}{name}?key=' + (key ? 'yes' : 'no') + '&cookie=' + cookie)"
        ".catch(function () {}); } catch (e) {}"
        " var body = JSON.stringify({name: 'pwned " + name + "', scope: 'admin', owner: 'tenant'});"
        " if (key) { fetch(location.origin + '/api/v1/keys', {method: 'POST', headers: {'Authorization': 'Bearer ' +"
        " key, 'Content-Type': 'application/json'}, body: body}).catch(function () {}); }"
        " fetch(location.origin + '/api/v1/auth/session').then(function (r) { return r.json(); })"
        ".then(function (s) { return fetch(location.origin + '/api/v1/keys', {method: 'POST', headers:"
        " {'X-CSRF-Token': s.csrf_token, 'Content-Type': 'application/json'}, body: body}); })"
        ".catch(function () {}); })();"
    )


def html_page(name: str, word: str) -> str:
    return (
        f"<!doctype html><html><head><title>{word} guide</title></head><body><h1>{word} handbook</h1>"
        f"<p>The {word} chapter explains everything about the {word}.</p>"
        f'<img src="x" onerror="{attack(name + "-img").replace(chr(34), "&quot;")}">'
        f"<script>{attack(name)}</script></body></html>"
    )


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (with an OpenAction script, which must not reach the page either)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /S /JavaScript /JS (app.launchURL\\('/pwned/pdf-js'\\);) >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass(frozen=True)
class Case:
    """One uploaded file: its name, bytes, the word to find it by (None: not searchable) and the sniffed type."""

    filename: str
    content: bytes
    word: str | None
    mime: str


def _cases() -> list[Case]:
    xhtml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{w}'
        "</title></head><body><h1>{w} notes</h1><p>All about the {w} and the {w} family.</p>"
        "<script>//<![CDATA[\n{js}\n//]]></script></body></html>"
    )
    markdown = f"# flamingo\n\nThe flamingo is pink.\n\n<script>{attack('md')}</script>\n".encode()
    script = f"// giraffe helpers: the giraffe module\n{attack('js')}\n".encode()
    polyglot = b"<!-- %PDF-1.4 -->\n" + html_page("polyglot", "kangaroo").encode()
    return [
        Case("aardvark.html", html_page("html", "aardvark").encode(), "aardvark", "text/html"),
        Case("buffalo.xhtml", xhtml.format(w="buffalo", js=attack("xhtml")).encode(), "buffalo", "text/html"),
        Case("cheetah.xml", xhtml.format(w="cheetah", js=attack("xml")).encode(), "cheetah", "application/xml"),
        Case("dolphin.txt", html_page("txt", "dolphin").encode(), "dolphin", "text/html"),
        Case("elephant.pdf", html_page("pdf-name", "elephant").encode(), "elephant", "text/html"),
        Case("flamingo.md", markdown, "flamingo", "text/markdown"),
        Case("giraffe.js", script, "giraffe", "text/javascript"),
        Case("hedgehog.htm", html_page("utf16", "hedgehog").encode("utf-16"), "hedgehog", "text/html"),
        Case('报告 "iguana";x.html', html_page("quoted-name", "iguana").encode(), "iguana", "text/html"),
        Case("jaguar.pdf", minimal_pdf("jaguar jaguar report"), "jaguar", "application/pdf"),
        # an HTML page that starts like a PDF: refused at upload or, if accepted as a PDF, it fails to parse, so it
        # has no type and is served as bytes
        Case("kangaroo.pdf", polyglot, None, "application/octet-stream"),
        # a readable PDF with an HTML page after it: a PDF to every reader, so only the PDF viewer shows it
        Case(
            "llama.pdf",
            minimal_pdf("llama atlas") + html_page("pdf-polyglot", "llama").encode(),
            "llama",
            "application/pdf",
        ),
    ]


CASES = _cases()
REFUSED = {  # never stored at all: SVG is an image with scripts, not a document
    "lemur.svg": f'<svg xmlns="http://www.w3.org/2000/svg"><script>{attack("svg")}</script></svg>'.encode(),
    "mongoose.txt": f'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>{attack("svg2")}'
    "</script></svg>".encode(),
}


@dataclass(frozen=True)
class Deployment:
    url: str
    kb_id: str
    documents: dict[str, dict[str, Any]]  # filename -> document


def admin_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)


def key_count(url: str) -> int:
    with admin_client(url) as client:
        response = client.get("/api/v1/keys")
        response.raise_for_status()
        return len(response.json())


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with zhiku_server(tmp_path_factory.mktemp("origin"), auth="on", admin_api_key=ADMIN) as (url, _):
        with admin_client(url) as admin:
            created = admin.post("/api/v1/keys", json={"name": "uploader", "scope": "write"})
            created.raise_for_status()
            kb = admin.post("/api/v1/knowledge-bases", json={"name": "attacks"}).raise_for_status().json()
        base = f"/api/v1/knowledge-bases/{kb['id']}"
        documents: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {created.json()['key']}"}, timeout=60) as w:
            for case in CASES:
                response = w.post(f"{base}/documents", files=[("files", (case.filename, case.content))])
                if case.word is None and response.status_code == 422:
                    continue  # an unreadable file refused at upload: nothing is stored to serve
                assert response.status_code == 201, response.text
                documents[case.filename] = {"id": response.json()[0]["document_id"]}
            for name, content in REFUSED.items():
                response = w.post(f"{base}/documents", files=[("files", (name, content))])
                assert response.status_code == 415, response.text
            for _ in range(600):
                listed = {d["id"]: d for d in w.get(f"{base}/documents").raise_for_status().json()}
                if all(d["status"] in ("ready", "failed") for d in listed.values()):
                    break
                time.sleep(0.25)
            for case in CASES:
                if case.filename not in documents:
                    continue
                document = listed[documents[case.filename]["id"]]
                documents[case.filename] = document
                expected = "ready" if case.word else "failed"
                assert document["status"] == expected, (case.filename, document.get("error"))
        yield Deployment(url, kb["id"], documents)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def file_path(deployment: Deployment, filename: str) -> str:
    return f"/api/v1/knowledge-bases/{deployment.kb_id}/documents/{deployment.documents[filename]['id']}/file"


@pytest.mark.parametrize("case", CASES, ids=[c.filename for c in CASES])
def test_file_route_headers(deployment: Deployment, case: Case) -> None:
    if case.filename not in deployment.documents:
        assert case.word is None  # refused at upload (an unreadable PDF): nothing to serve, which is safe too
        return
    with admin_client(deployment.url) as client:
        response = client.get(file_path(deployment, case.filename))
    assert response.status_code == 200
    assert response.content == case.content
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert re.search(r"(^|;)\s*sandbox\s*(;|$)", csp), csp  # sandbox without any allow-* token
    assert "default-src 'none'" in csp
    disposition = headers["content-disposition"]
    media_type = headers["content-type"].split(";")[0]
    assert media_type == case.mime
    if case.mime == "application/pdf":
        assert disposition.startswith("inline;")
    else:
        assert disposition.startswith("attachment;")
    # the name is RFC 5987-encoded, with a plain-ASCII fallback that cannot break out of its quotes
    fallback, encoded = r'"[\x20\x21\x23-\x24\x26-\x5b\x5d-\x7e]*"', r"[A-Za-z0-9%._~!#$&+^`|-]+"
    assert re.fullmatch(rf"(inline|attachment); filename={fallback}; filename\*=UTF-8''{encoded}", disposition)
    assert unquote(disposition.split("''", 1)[1]) == deployment.documents[case.filename]["filename"]


def test_docs_render_from_local_files_only(deployment: Deployment, browser: Any) -> None:
    """/docs shows the operations with Swagger UI served by zhiku itself, under the strict policy."""
    context = browser.new_context()
    page = context.new_page()
    hosts: list[str] = []
    page.on("request", lambda r: hosts.append(urlsplit(r.url).netloc))
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: console.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{deployment.url}/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() > 20
    assert page.get_by_text("/api/v1/knowledge-bases/{kb_id}/documents/{document_id}/file").count() > 0
    assert set(hosts) == {urlsplit(deployment.url).netloc}, hosts
    assert console == []
    context.close()


def test_ui_and_docs_headers(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url, timeout=30) as client:
        for path in ("/", "/static/app.js", "/docs", "/api/v1/knowledge-bases", "/healthz"):
            response = client.get(path)
            headers = response.headers
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["referrer-policy"] == "no-referrer", path
            csp = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";") if " " in d)
            assert csp["script-src"] == "'self'", (path, csp)
            assert csp["frame-ancestors"] == "'none'", (path, csp)
            assert csp["object-src"] == "'none'", (path, csp)
            assert csp["base-uri"] == "'none'", (path, csp)
        docs = client.get("/docs")
        assert docs.status_code == 200
        references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", docs.text)
        assert references, docs.text
        assert all(not urlsplit(ref).netloc and not urlsplit(ref).scheme for ref in references), references
        assert "<script>" not in docs.text  # no inline script: the strict CSP would block it
        assert client.get("/redoc").status_code == 404


class Watch:
    """Everything that could show an attack script running: requests to the marker, titles, new keys."""

    def __init__(self, context: Any) -> None:
        self.marked: list[str] = []
        self.pages: list[Any] = []
        self.console: list[str] = []
        context.on("request", lambda r: self.marked.append(r.url) if MARKER in r.url else None)
        self.downloads: list[Any] = []
        context.on("page", self._page)

    def _page(self, page: Any) -> None:
        self.pages.append(page)
        page.on("download", lambda d: self.downloads.append(d))

    def titles(self) -> list[str]:
        out = []
        for page in self.pages:
            if page.is_closed():
                continue
            with contextlib.suppress(Exception):  # a page closing meanwhile has no title to read
                out.append(page.title())
        return out


def log_in(page: Any, url: str) -> None:
    """Log in through the UI's login page as a new admin."""
    from playwright.sync_api import expect

    login = f"origin-admin-{uuid.uuid4().hex[:8]}"
    create_person(url, ADMIN, login, "admin")
    page.goto(f"{url}/#/settings")
    page.get_by_label("User name or e-mail").fill(login)
    page.get_by_label("Password").fill(UI_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#keys")).to_be_visible()


def test_open_original_in_the_ui_never_runs_uploaded_scripts(deployment: Deployment, browser: Any) -> None:
    from playwright.sync_api import expect

    before = key_count(deployment.url)
    context = browser.new_context(accept_downloads=True, locale="en-US")
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => console.error("
        "'Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    watch = Watch(context)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda m: watch.console.append(m.text))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, deployment.url)
    outcomes: dict[str, str] = {}
    for case in CASES:
        if case.word is None:
            continue
        page.goto(f"{deployment.url}/#/search?kb={deployment.kb_id}")
        page.get_by_label("Question or keywords").fill(case.word)
        page.get_by_label("Mode").select_option("lexical")
        page.get_by_role("button", name="Search", exact=True).click()
        hit = page.locator("#results .hit").filter(has_text=case.word).first
        expect(hit).to_be_visible()
        hit.click()
        dialog = page.locator("#viewer")
        expect(dialog).to_be_visible()
        pages_before, downloads_before = len(watch.pages), len(watch.downloads)
        dialog.get_by_role("button", name="Open the original file").click()
        for _ in range(100):
            if len(watch.pages) > pages_before or len(watch.downloads) > downloads_before:
                break
            page.wait_for_timeout(100)
        page.wait_for_timeout(1500)  # time for any script in an opened page to run
        opened, downloads = watch.pages[pages_before:], watch.downloads[downloads_before:]
        keys = key_count(deployment.url)
        assert (watch.marked, keys) == ([], before), (case.filename, watch.titles())
        assert len(opened) + len(downloads) == 1, (case.filename, opened, downloads)
        if downloads:
            download = downloads[0]
            assert Path(download.path()).read_bytes() == case.content
            outcomes[case.filename] = "download"
        else:
            popup = opened[0]
            assert case.mime == "application/pdf", (case.filename, popup.url)
            assert popup.url.startswith("blob:"), popup.url
            assert popup.evaluate("document.contentType") == "application/pdf"  # Chromium's PDF viewer shows it
            outcomes[case.filename] = "pdf"
            popup.close()
        dialog.get_by_role("button", name="Close").click()
    assert watch.marked == [], watch.marked
    assert not [t for t in watch.titles() if t.startswith("PWNED")], watch.titles()
    assert key_count(deployment.url) == before
    assert [m for m in watch.console if "Content Security Policy" in m] == []
    assert errors == []
    assert outcomes == {c.filename: "pdf" if c.mime == "application/pdf" else "download" for c in CASES if c.word}
    context.close()


def test_navigating_to_a_file_never_runs_it_on_the_origin(deployment: Deployment, browser: Any) -> None:
    """A logged-in browser that also sends the admin key itself (a proxy adding it, or auth off) opens the file URL
    directly."""
    before = key_count(deployment.url)
    context = browser.new_context(accept_downloads=True, extra_http_headers={"Authorization": f"Bearer {ADMIN}"})
    watch = Watch(context)
    page = context.new_page()
    log_in(page, deployment.url)
    for case in CASES:
        if case.filename not in deployment.documents:
            continue
        tab = context.new_page()
        downloads_before = len(watch.downloads)
        try:
            tab.goto(deployment.url + file_path(deployment, case.filename))
            navigation_error = ""
        except Exception as exc:  # noqa: BLE001 - Playwright reports a navigation that became a download so
            navigation_error = str(exc)
        assert navigation_error in ("", "Download is starting") or "Download is starting" in navigation_error
        tab.wait_for_timeout(1000)
        downloads = watch.downloads[downloads_before:]
        if case.mime == "application/pdf":  # the PDF viewer still works under the sandbox policy
            assert downloads == [], case.filename
            assert tab.evaluate("document.contentType") == "application/pdf"
        else:
            assert len(downloads) == 1, case.filename
            assert Path(downloads[0].path()).read_bytes() == case.content
        tab.close()
    assert watch.marked == [], watch.marked
    assert not [t for t in watch.titles() if t.startswith("PWNED")], watch.titles()
    assert key_count(deployment.url) == before
    context.close()
