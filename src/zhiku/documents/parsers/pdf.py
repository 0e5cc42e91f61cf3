"""PDF parser on PDFium (``pypdfium2``): text per page with exact page offsets.

PDFium is not thread-safe, so all calls into it are serialised by a module lock.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]
import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped, unused-ignore]

from zhiku.documents.furniture import strip_furniture
from zhiku.documents.parsers.text import normalize_newlines, remove_control_chars
from zhiku.documents.pdf_tables import find_tables
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import Page, ParsedDocument, Table
from zhiku.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError

if TYPE_CHECKING:
    from PIL import Image

    from zhiku.documents.ocr import OcrResult

PAGE_SEPARATOR = "\n\n"

_PDFIUM_LOCK = threading.Lock()


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Extract the text layer of every page.

    Pages are joined by a blank line; ``doc.text[page.start:page.end]`` is exactly that page's text, without its
    furniture (tables of contents, running headers and footers, page numbers: :mod:`zhiku.documents.furniture`).
    Pages without text but with content (scans) are empty and listed in ``pages_needing_ocr``; the ingestion
    reads them with OCR (:func:`ocr_page_image`, :func:`with_ocr_text`).

    Raises:
        EncryptedDocumentError: the PDF needs a password.
        CorruptDocumentError: PDFium cannot load it (the reason is PDFium's).
        EmptyDocumentError: the PDF has no pages, or no text and no page needing OCR.
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
    if not any(page_texts) and not needing_ocr:
        raise EmptyDocumentError(f"{name} contains no text")

    page_texts, _ = strip_furniture(page_texts)  # tables of contents, running heads, page numbers
    text, pages = _join_pages(page_texts)
    return ParsedDocument(
        text=text,
        pages=pages,
        mime_type=detected.mime_type,
        title=title,
        pages_needing_ocr=needing_ocr,
        warnings=warnings,
        tables=find_tables(path, page_texts, pages, pdfium_lock=_PDFIUM_LOCK),
    )


def _join_pages(page_texts: list[str]) -> tuple[str, list[Page]]:
    """The document text (pages joined by :data:`PAGE_SEPARATOR`) and each page's range in it."""
    pages: list[Page] = []
    offset = 0
    for number, text in enumerate(page_texts, start=1):
        if number > 1:
            offset += len(PAGE_SEPARATOR)
        pages.append(Page(number=number, start=offset, end=offset + len(text)))
        offset += len(text)
    return PAGE_SEPARATOR.join(page_texts), pages


def needs_ocr_message(name: str, pages: int) -> str:
    """Why a PDF with no text layer at all and no OCR yields nothing (the job's error)."""
    return (
        f"{name} has no text layer on any of its {pages} page(s): it is a scan or image-only PDF and needs OCR, "
        "which is off (ZHIKU_OCR_ENABLED) or unavailable"
    )


def with_ocr_text(document: ParsedDocument, results: dict[int, tuple[str, float, str | None]]) -> ParsedDocument:
    """``document`` with the OCR text of its scanned pages filled in.

    ``results`` maps page numbers of ``document.pages_needing_ocr`` to (text, confidence, error): the error, when
    not ``None``, says why the page could not be read. Page furniture is stripped again over all pages (the running
    header of a scan is only known once its pages are read); the text-layer pages are already clean.
    ``ocr_pages`` gets the pages that yielded text, with their confidence; pages not in ``results`` still need OCR.
    """
    page_texts = [document.text[page.start : page.end] for page in document.pages]
    read: dict[int, float] = {}
    warnings = [w for w in document.warnings if not _is_needs_ocr_warning(w, results)]
    for number, (text, confidence, error) in sorted(results.items()):
        if not 1 <= number <= len(page_texts):
            continue
        cleaned = clean_page_text(text)
        if error is not None:
            warnings.append(f"page {number} could not be read by OCR: {error}")
        elif not cleaned:
            warnings.append(f"page {number}: OCR found no text")
        else:
            page_texts[number - 1] = cleaned
            read[number] = round(confidence, 3)
    page_texts, _ = strip_furniture(page_texts)
    text, pages = _join_pages(page_texts)
    return replace(
        document,
        text=text,
        pages=pages,
        tables=_moved_tables(document, text, pages),
        pages_needing_ocr=[number for number in document.pages_needing_ocr if number not in results],
        ocr_pages={**document.ocr_pages, **read},
        warnings=warnings,
    )


def _moved_tables(document: ParsedDocument, text: str, pages: list[Page]) -> list[Table]:
    """``document``'s tables at their offsets in the new ``text`` of its ``pages``: each moves with its page, and is
    dropped if its page's text changed (OCR text of scanned pages has no table records)."""
    moved: list[Table] = []
    for table in document.tables:
        number = document.page_at(table.start)
        old, new = document.pages[number - 1], pages[number - 1]
        if document.text[old.start : old.end] != text[new.start : new.end] or table.end > old.end:
            continue
        shift = new.start - old.start
        moved.append(
            Table(
                table.start + shift,
                table.end + shift,
                tuple(row + shift for row in table.row_starts),
                None if table.header_end is None else table.header_end + shift,
            )
        )
    return moved


def _is_needs_ocr_warning(warning: str, results: dict[int, tuple[str, float, str | None]]) -> bool:
    return any(warning == f"page {number} has no text layer (needs OCR)" for number in results)


MAX_OCR_PIXELS = 40_000_000
"""Most pixels a page is rendered with for OCR (a letter page at 300 dpi has 8.4 million): a page declared
hundreds of inches wide is rendered at a lower resolution instead of exhausting memory."""


def ocr_render_scale(width: float, height: float, dpi: int) -> float:
    """Pixels per PDF point to render a ``width`` × ``height`` point page at ``dpi`` within :data:`MAX_OCR_PIXELS`."""
    scale = dpi / 72
    if width * height * scale * scale > MAX_OCR_PIXELS:
        scale = 0.995 * (MAX_OCR_PIXELS / max(1.0, width * height)) ** 0.5  # PDFium rounds pixel sizes up
    return scale


def render_page(path: Path, filename: str, number: int, dpi: int) -> Image.Image:
    """Page ``number`` (1-based) rendered at ``dpi`` (fewer when it would exceed :data:`MAX_OCR_PIXELS`), RGB.

    Raises:
        CorruptDocumentError: the file has no such page, or the page cannot be rendered.
    """
    with _PDFIUM_LOCK:
        document = _open(path, filename)
        try:
            if not 1 <= number <= len(document):
                raise CorruptDocumentError(f"{filename} has no page {number}")
            page = document[number - 1]
            try:
                width, height = page.get_size()
                image: Image.Image = page.render(scale=ocr_render_scale(width, height, dpi)).to_pil()
            except pdfium.PdfiumError as exc:
                raise CorruptDocumentError(f"page {number} of {filename} cannot be rendered: {exc}") from exc
            finally:
                page.close()
        finally:
            document.close()
    return image if image.mode == "RGB" else image.convert("RGB")


def ocr_page_image(path: Path, filename: str, number: int, dpi: int) -> OcrResult:
    """Page ``number`` (1-based) rendered at ``dpi`` (:func:`render_page`) and read with OCR.

    Raises:
        CorruptDocumentError: the page cannot be rendered.
        ModelLoadError: the OCR engine is unavailable.
    """
    from zhiku.documents.ocr import ocr_page  # loads the OCR engine: only the OCR process imports it

    return ocr_page(render_page(path, filename, number, dpi))


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
