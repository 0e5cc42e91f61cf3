"""Stored OCR results of scanned pages, by file content hash (table ``ocr_pages``): a page is read by OCR once,
a job interrupted in the middle of a scan resumes at the next page, and the document viewer shows OCR text
without running OCR again."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from zhiku.storage.db import Database
from zhiku.storage.models import OcrPage

PageResult = tuple[str, float, str | None]
"""One page's OCR result: text, confidence (0-1), and the error that kept it from being read (or ``None``)."""


def stored_ocr(db: Database, content_hash: str) -> dict[int, PageResult]:
    """The OCR results stored for the file with ``content_hash``, by page number."""
    with db.session() as session:
        rows = session.scalars(select(OcrPage).where(OcrPage.content_hash == content_hash))
        return {row.page: (row.text, row.confidence, row.error) for row in rows}


def store_ocr_page(db: Database, content_hash: str, page: int, result: PageResult) -> None:
    """Keep one page's OCR result (if another job reading the same file stored it first, that one is kept)."""
    text, confidence, error = result
    try:
        with db.session() as session:
            session.add(OcrPage(content_hash=content_hash, page=page, text=text, confidence=confidence, error=error))
    except IntegrityError:
        pass


def forget_ocr(db: Database, content_hash: str) -> None:
    """Delete the stored OCR results of a file (when its blob is deleted)."""
    with db.session() as session:
        session.execute(delete(OcrPage).where(OcrPage.content_hash == content_hash))
