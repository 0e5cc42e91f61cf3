"""Plain text parser, and the helpers the other text-producing parsers share.

Decoding: BOM (UTF-8/16/32), else strict UTF-8, else ``charset-normalizer`` (GB18030, Big5, Shift-JIS,
UTF-16 without BOM, ...). Undecodable bytes are binary and rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zhiku.documents.sniff import DecodedText, DetectedType, decode_text, plausible_text
from zhiku.documents.types import Page, ParsedDocument, Section, Table
from zhiku.errors import EmptyDocumentError, UnsupportedTypeError

_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x85]")
#: C0/C1 control characters other than tab and newline (form feeds, NULs, stray font codes from PDFs ...).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")


def normalize_newlines(text: str) -> str:
    """Turn ``\\r\\n``, ``\\r`` and Unicode line/paragraph separators into ``\\n``."""
    return _NEWLINES.sub("\n", text)


def remove_control_chars(text: str) -> str:
    """Drop control characters that carry no text (keeps tab and newline)."""
    return _CONTROL_CHARS.sub("", text)


def read_text(path: Path, detected: DetectedType, name: str) -> tuple[str, str]:
    """Decode the whole file as text: returns ``(text, encoding)`` with newlines normalised, BOM removed.

    The encoding found while sniffing is tried first on the whole file; if it fails (the sample was not
    representative) detection runs again on all bytes.

    Raises:
        EmptyDocumentError: nothing but whitespace.
        UnsupportedTypeError: the bytes are not text in any plausible encoding.
    """
    data = path.read_bytes()
    if not data:
        raise EmptyDocumentError(f"{name} is empty (0 bytes)")
    decoded = _decode_as(data, detected.encoding) if detected.encoding else None
    if decoded is None:
        decoded = decode_text(data)
    if decoded is None:
        raise UnsupportedTypeError(
            f"binary content in {name} is not a supported document type (it is not text in any plausible encoding)"
        )
    text = normalize_newlines(decoded.text)
    if not text.strip():
        raise EmptyDocumentError(f"{name} contains only whitespace")
    return text, decoded.encoding


def _decode_as(data: bytes, encoding: str) -> DecodedText | None:
    """Decode all of ``data`` with the sniffed encoding (after its BOM), if that works and looks like text."""
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    text = text.removeprefix("\ufeff")
    return DecodedText(text, encoding) if plausible_text(text) else None


def single_page(text: str) -> list[Page]:
    """The one page of a format without pages."""
    return [Page(number=1, start=0, end=len(text))]


def read_source_text(path: Path, detected: DetectedType, name: str) -> str:
    """Decoded source text (Markdown, code) without control characters or trailing whitespace; never blank."""
    text, _encoding = read_text(path, detected, name)
    text = remove_control_chars(text).rstrip()
    if not text.strip():
        raise EmptyDocumentError(f"{name} contains only whitespace")
    return text


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Parse a plain text file: decoded, newlines normalised, trailing whitespace removed, one page."""
    name = filename or path.name
    text, _encoding = read_text(path, detected, name)
    text = text.rstrip()
    return ParsedDocument(text=text, pages=single_page(text), mime_type=detected.mime_type)


@dataclass(frozen=True)
class Block:
    """One piece of a structured document, in reading order.

    ``heading_level`` > 0 (or 0 for a document title) marks a heading. Consecutive blocks with the same
    ``group`` (the rows of one table, the items of one list) are joined by one newline instead of a blank line.
    ``table_row`` marks a table's rows: its leading ``"header"`` rows then its ``"body"`` rows, all of one group.
    """

    text: str
    heading_level: int | None = None
    group: int | None = None
    table_row: Literal["header", "body"] | None = None


def assemble(blocks: Iterable[Block]) -> tuple[str, list[Section], list[Table]]:
    """Join blocks into text (blank lines between paragraphs) and compute heading sections and tables.

    A heading's section runs from the heading to the next heading of the same or a higher (smaller) level. A
    table is a group's header rows followed by at least one body row.
    """
    parts: list[str] = []
    rows: list[tuple[int, int, int | None, str]] = []  # (start, end, group, "header"/"body") of table rows
    length = 0
    previous_group: int | None = None
    open_headings: list[tuple[int, str, int]] = []  # (level, title, start) outermost first
    sections: list[Section] = []

    def close(level: int, end: int) -> None:
        while open_headings and open_headings[-1][0] >= level:
            _level, _title, start = open_headings[-1]
            path = tuple(title for _lvl, title, _start in open_headings)
            sections.append(Section(start=start, end=end, heading_path=path))
            open_headings.pop()

    for block in blocks:
        text = block.text.strip("\n").rstrip()
        if not text.strip():
            continue
        separator = ""
        if parts:
            separator = "\n" if block.group is not None and block.group == previous_group else "\n\n"
            parts.append(separator)
            length += len(separator)
        if block.heading_level is not None:
            close(block.heading_level, length - len(separator))
            open_headings.append((block.heading_level, " ".join(text.split()), length))
        if block.table_row is not None:
            rows.append((length, length + len(text), block.group, block.table_row))
        parts.append(text)
        length += len(text)
        previous_group = block.group
    close(-1, length)
    sections.sort(key=lambda section: (section.start, len(section.heading_path)))
    return "".join(parts), sections, _tables(rows)


def _tables(rows: list[tuple[int, int, int | None, str]]) -> list[Table]:
    """Tables from consecutive table rows of one group: header rows first, then body rows."""
    tables: list[Table] = []
    index = 0
    while index < len(rows):
        group = rows[index][2]
        end = index
        while end < len(rows) and rows[end][2] == group:
            end += 1
        members = rows[index:end]
        header = 0
        while header < len(members) and members[header][3] == "header":
            header += 1
        body = [row for row in members[header:] if row[3] == "body"]
        if header and body:
            tables.append(Table(start=members[0][0], end=body[-1][1], row_starts=tuple(row[0] for row in body)))
        index = end
    return tables
