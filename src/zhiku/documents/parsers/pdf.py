"""PDF parser on PDFium (``pypdfium2``): text per page with exact page offsets.

PDFium is not thread-safe, so all calls into it are serialised by a module lock.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]
import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped, unused-ignore]

from zhiku.documents.furniture import strip_furniture
from zhiku.documents.parsers.text import normalize_newlines, remove_control_chars
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import Page, ParsedDocument
from zhiku.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError

PAGE_SEPARATOR = "\n\n"

_PDFIUM_LOCK = threading.Lock()


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Extract the text layer of every page.

    Pages are joined by a blank line; ``doc.text[page.start:page.end]`` is exactly that page's text, without its
    furniture (tables of contents, running headers and footers, page numbers: :mod:`zhiku.documents.furniture`).
    Pages without text but with content (scans) are listed in ``pages_needing_ocr``.

    Raises:
        EncryptedDocumentError: the PDF needs a password.
        CorruptDocumentError: PDFium cannot load it (the reason is PDFium's).
        EmptyDocumentError: no page has a text layer.
    """
    name = filename or path.name
    with _PDFIUM_LOCK:
        document = _open(path, name)
        try:
            page_texts, blank_pages, failed_pages = _extract_pages(document)
            title = _metadata_title(document)
        finally:
            document.close()

    warnings: list[str] = []
    needing_ocr: list[int] = []
    for number, (text, blank) in enumerate(zip(page_texts, blank_pages, strict=True), start=1):
        if text or number in failed_pages:
            continue
        if blank:
            warnings.append(f"page {number} is blank")
        else:
            needing_ocr.append(number)
            warnings.append(f"page {number} has no text layer (needs OCR)")
    warnings.extend(f"page {number} could not be read: {reason}" for number, reason in failed_pages.items())

    if not page_texts:
        raise EmptyDocumentError(f"{name} has no pages")
    if not any(page_texts):
        if needing_ocr:
            raise EmptyDocumentError(
                f"{name} has no text layer on any of its {len(page_texts)} page(s): it is a scan or image-only PDF "
                "and needs OCR"
            )
        raise EmptyDocumentError(f"{name} contains no text")

    page_texts, _ = strip_furniture(page_texts)  # tables of contents, running heads, page numbers
    pages: list[Page] = []
    offset = 0
    for number, text in enumerate(page_texts, start=1):
        if number > 1:
            offset += len(PAGE_SEPARATOR)
        pages.append(Page(number=number, start=offset, end=offset + len(text)))
        offset += len(text)
    return ParsedDocument(
        text=PAGE_SEPARATOR.join(page_texts),
        pages=pages,
        mime_type=detected.mime_type,
        title=title,
        pages_needing_ocr=needing_ocr,
        warnings=warnings,
    )


def check_structure(path: Path, name: str) -> None:
    """The upload check: PDFium opens the file (header, cross-reference table, trailer), it is not encrypted and it
    has pages. Page contents are not read (the job does that, within the parsing budget).

    Raises:
        EncryptedDocumentError, CorruptDocumentError, EmptyDocumentError: as :func:`parse` would.
    """
    with _PDFIUM_LOCK:
        document = _open(path, name)
        try:
            pages = len(document)
        finally:
            document.close()
    if pages == 0:
        raise EmptyDocumentError(f"{name} has no pages")


def _open(path: Path, name: str) -> Any:
    """Load the document, turning PDFium's load errors into document errors."""
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_raw.FPDF_ERR_PASSWORD:
            raise EncryptedDocumentError(
                f"{name} is password-protected; remove the password and upload it again"
            ) from exc
        if code == pdfium_raw.FPDF_ERR_SECURITY:
            raise EncryptedDocumentError(
                f"{name} is encrypted with an unsupported security handler; remove the protection and upload it again"
            ) from exc
        raise CorruptDocumentError(f"{name} is not a readable PDF: {exc}") from exc


def _extract_pages(document: Any) -> tuple[list[str], list[bool], dict[int, str]]:
    """Per page: cleaned text, whether the page is blank (no objects at all), and pages PDFium failed on."""
    texts: list[str] = []
    blanks: list[bool] = []
    failed: dict[int, str] = {}
    for index in range(len(document)):
        try:
            page = document[index]
        except pdfium.PdfiumError as exc:
            failed[index + 1] = str(exc)
            texts.append("")
            blanks.append(False)
            continue
        try:
            textpage = page.get_textpage()
            try:
                raw = textpage.get_text_range()
            finally:
                textpage.close()
            blanks.append(pdfium_raw.FPDFPage_CountObjects(page.raw) == 0)
        except pdfium.PdfiumError as exc:
            failed[index + 1] = str(exc)
            raw = ""
            blanks.append(False)
        finally:
            page.close()
        texts.append(clean_page_text(raw))
    return texts, blanks, failed


def clean_page_text(raw: str) -> str:
    """PDFium text to clean page text: ``\\n`` newlines, PDFium's hyphen marker as ``-``, no control characters.

    Trailing whitespace is removed from every line and from the page; leading blank lines are dropped.
    """
    text = normalize_newlines(raw).replace("\ufffe", "-").replace("\x02", "-")
    text = remove_control_chars(text)
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n").rstrip()


def _metadata_title(document: Any) -> str | None:
    """The ``/Title`` of the document information dictionary, if it says anything."""
    try:
        metadata = document.get_metadata_dict(skip_empty=True)
    except (pdfium.PdfiumError, UnicodeDecodeError, ValueError):
        return None
    title = remove_control_chars(str(metadata.get("Title", ""))).strip()
    return title or None
