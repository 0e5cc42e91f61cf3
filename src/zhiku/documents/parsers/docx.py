"""DOCX parser on ``python-docx``: body paragraphs and tables in order, headings as sections.

Tables are reported as tables: the header is the leading rows marked "repeat as header row" (``w:tblHeader``),
else the first row.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table, _Cell, _Row
from docx.text.paragraph import Paragraph

from zhiku.documents.parsers.text import Block, assemble, normalize_newlines, remove_control_chars, single_page
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import ParsedDocument
from zhiku.errors import CorruptDocumentError, EmptyDocumentError

CELL_SEPARATOR = " | "

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Extract paragraphs and tables (rows as lines, cells joined by ``" | "``) in body order.

    Paragraphs in the styles "Title" and "Heading N" open sections; the title comes from the core properties,
    else the first "Title" paragraph.

    Raises:
        CorruptDocumentError: the ZIP container or its XML is damaged.
        EmptyDocumentError: the body has no text.
    """
    name = filename or path.name
    try:
        document = docx.Document(str(path))
        blocks = list(_blocks(document.iter_inner_content()))
        core_title = document.core_properties.title
    except (zipfile.BadZipFile, PackageNotFoundError) as exc:
        raise CorruptDocumentError(f"{name} is not a readable DOCX file: {exc}") from exc
    except Exception as exc:  # python-docx surfaces lxml, KeyError, ValueError ... for damaged parts
        raise CorruptDocumentError(f"{name} is a damaged DOCX file: {type(exc).__name__}: {exc}") from exc

    text, sections, tables = assemble(blocks)
    if not text.strip():
        raise EmptyDocumentError(f"{name} contains no text")
    title = (core_title or "").strip() or next(
        (block.text.strip() for block in blocks if block.heading_level == 0), None
    )
    return ParsedDocument(
        text=text, pages=single_page(text), mime_type=detected.mime_type, sections=sections, title=title, tables=tables
    )


def check_structure(path: Path, name: str) -> None:
    """The upload check: every member of the ZIP container unpacks to the size its headers declare with the right
    CRC (the declared sizes passed the ZIP-bomb check while sniffing, so this is bounded), and python-docx finds the
    main document part. The text is extracted by the job.

    Raises:
        CorruptDocumentError: a damaged container, a member whose headers lie, or no readable main part.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    while member.read(1024 * 1024):  # ZipExtFile checks the size and CRC at the end
                        pass
        docx.Document(str(path))
    except (zipfile.BadZipFile, PackageNotFoundError, EOFError, OSError) as exc:
        raise CorruptDocumentError(f"{name} is not a readable DOCX file: {exc}") from exc
    except Exception as exc:  # python-docx surfaces lxml, KeyError, ValueError ... for damaged parts
        raise CorruptDocumentError(f"{name} is a damaged DOCX file: {type(exc).__name__}: {exc}") from exc


def _blocks(items: Iterator[Paragraph | Table]) -> Iterator[Block]:
    """Paragraphs become blocks (headings with their level), tables one line block per row."""
    for index, item in enumerate(items):
        if isinstance(item, Paragraph):
            text = _clean(item.text)
            if text.strip():
                yield Block(text, heading_level=_heading_level(item))
        else:
            rows = [(_row_text(row), _repeats_as_header(row)) for row in item.rows]
            rows = [(text, header) for text, header in rows if text]
            headers = next((number for number, (_text, header) in enumerate(rows) if not header), len(rows))
            if headers == 0 and len(rows) >= 3 and CELL_SEPARATOR in rows[0][0]:
                headers = 1  # no row marked: a data table's first row names its columns
            for number, (text, _header) in enumerate(rows):
                kind: Literal["header", "body"] = "header" if number < headers else "body"
                yield Block(text, group=index, table_row=kind)


def _repeats_as_header(row: _Row) -> bool:
    """Whether Word repeats ``row`` at the top of each page (``<w:tblHeader/>``): the table's marked header."""
    marks = row._tr.xpath("./w:trPr/w:tblHeader")
    return bool(marks) and marks[0].get(qn("w:val"), "true") not in ("0", "false", "off")


def _heading_level(paragraph: Paragraph) -> int | None:
    """0 for "Title", N for "Heading N" (also through a style based on one), else ``None``."""
    style = paragraph.style
    depth = 0
    while style is not None and depth < 5:
        style_name = (style.name or "").strip()
        if style_name.lower() == "title":
            return 0
        match = _HEADING_STYLE.match(style_name)
        if match:
            return int(match.group(1))
        style = style.base_style
        depth += 1
    return None


def _table_rows(table: Table) -> Iterator[str]:
    """Each row as its distinct cells' text joined by ``" | "`` (merged cells appear once); empty rows left out."""
    for row in table.rows:
        text = _row_text(row)
        if text:
            yield text


def _row_text(row: _Row) -> str:
    """A row's distinct cells' text joined by ``" | "`` (merged cells appear once), or ``""`` if all are empty."""
    cells: list[str] = []
    seen: set[int] = set()
    for cell in row.cells:
        key = id(cell._tc)
        if key in seen:
            continue
        seen.add(key)
        cells.append(_cell_text(cell))
    return CELL_SEPARATOR.join(cells) if any(cells) else ""


def _cell_text(cell: _Cell) -> str:
    """A cell's paragraphs and nested tables flattened to one line."""
    parts: list[str] = []
    for item in cell.iter_inner_content():
        if isinstance(item, Paragraph):
            parts.append(_clean(item.text))
        else:
            parts.extend(_table_rows(item))
    return " ".join(" ".join(parts).split())


def _clean(text: str) -> str:
    return remove_control_chars(normalize_newlines(text))
