"""Browser-facing safety headers: zhiku's origin holds API keys (the web UI keeps one in localStorage), so nothing
but zhiku's own files may run there.

Every response gets ``nosniff``, frame protection, no referrer and a strict Content-Security-Policy (scripts and
styles only from zhiku itself). A route that sets its own policy keeps it: the original-file route sends a
``sandbox`` policy instead, and its ``Content-Disposition`` comes from :func:`file_headers`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The policy of the web UI, /docs and every API response: only zhiku's own scripts, styles and connections.
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)

#: The policy of an uploaded file: an opaque origin with no scripts, plugins, forms or loads of anything.
FILE_POLICY = "sandbox; default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"

#: Uploaded types a browser may show in place: Chromium's PDF viewer renders PDFs without running page scripts
#: on this origin. Everything else (HTML, XHTML, XML, Markdown, code, text that may be sniffed) is a download.
INLINE_TYPES = frozenset({"application/pdf"})

_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("content-security-policy", PAGE_POLICY),
)

_UNSAFE_IN_QUOTES = re.compile(r'[^\x20-\x7e]|["\\%]')


def content_disposition(filename: str, *, inline: bool) -> str:
    """``inline``/``attachment`` with the name twice: an ASCII fallback that cannot leave its quotes, and the exact
    name RFC 5987-encoded (``filename*``), which browsers prefer."""
    fallback = _UNSAFE_IN_QUOTES.sub("_", filename) or "file"
    encoded = quote(filename, safe="!#$&+^`|")
    return f"{'inline' if inline else 'attachment'}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def file_headers(filename: str, media_type: str) -> dict[str, str]:
    """The headers of an uploaded file: a download unless it is a type shown safely in place, always sandboxed."""
    return {
        "Content-Disposition": content_disposition(filename, inline=media_type in INLINE_TYPES),
        "Content-Security-Policy": FILE_POLICY,
    }


class SecurityHeaders:
    """ASGI middleware: adds the safety headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
