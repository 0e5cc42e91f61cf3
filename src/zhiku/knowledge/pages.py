"""The text of one page of a stored document, parsed again, with its scanned pages' stored OCR text: what the
document viewer (REST API) and the MCP ``read_document_page`` tool show."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from zhiku.core import Zhiku
from zhiku.documents.parsers.pdf import with_ocr_text
from zhiku.documents.types import ParsedDocument
from zhiku.errors import NotFoundError
from zhiku.storage.models import Document
from zhiku.storage.ocr_pages import stored_ocr

PARSED_CACHE_SIZE = 16
"""Parsed documents kept for page views (a reader pages through one document: it is parsed once)."""

_parsed_cache: OrderedDict[tuple[str, str], ParsedDocument] = OrderedDict()
_parsed_lock = threading.Lock()


@dataclass(frozen=True)
class PageText:
    """One page of a document: its number, the document's page count, its text, and its OCR confidence (0-1) when
    the page is a scan read by OCR (else ``None``)."""

    page: int
    pages: int
    text: str
    ocr_confidence: float | None


def document_page(zhiku: Zhiku, document: Document, page: int) -> PageText:
    """Page ``page`` (1-based) of the active version of ``document``.

    The stored file is parsed again (in a parsing process, within the parsing budget); the last few parsed
    documents are kept.

    Raises:
        NotFoundError: the document has no ingested version, or no such page.
    """
    path = zhiku.blobs.path_for(document.content_hash)
    if not path.is_file() or document.version == 0:
        raise NotFoundError(f"{document.filename} has no ingested content yet")
    parsed = _parsed(zhiku, path, document.content_hash, document.filename)
    found = next((p for p in parsed.pages if p.number == page), None)
    if found is None:
        raise NotFoundError(f"{document.filename} has no page {page} (pages 1-{len(parsed.pages)})")
    return PageText(page, len(parsed.pages), parsed.text[found.start : found.end], parsed.ocr_pages.get(page))


def _parsed(zhiku: Zhiku, path: Path, content_hash: str, filename: str) -> ParsedDocument:
    """The stored file ``content_hash`` parsed, its scanned pages filled in with their stored OCR text.

    Files are stored by the hash of their content and OCR results in the metadata database, so a database and a
    hash always name the same page texts, whichever :class:`Zhiku` (``zhiku mcp`` opens one per call) parses
    them."""
    key = (zhiku.settings.resolved_database_url, content_hash)
    with _parsed_lock:
        if key in _parsed_cache:
            _parsed_cache.move_to_end(key)
            return _parsed_cache[key]
    parsed = zhiku.parsers.parse(path, filename)
    if parsed.pages_needing_ocr:
        stored = stored_ocr(zhiku.db, content_hash)
        parsed = with_ocr_text(parsed, {n: stored[n] for n in parsed.pages_needing_ocr if n in stored})
    with _parsed_lock:
        _parsed_cache[key] = parsed
        while len(_parsed_cache) > PARSED_CACHE_SIZE:
            _parsed_cache.popitem(last=False)
    return parsed
