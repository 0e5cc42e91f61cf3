"""What a parser produces and what the chunker consumes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Page:
    """One page of the parsed text: ``text[start:end]`` (1-based ``number``)."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class Section:
    """A heading's scope: ``text[start:end]`` lies under the headings in ``heading_path`` (outermost first)."""

    start: int
    end: int
    heading_path: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table in the text: ``text[start:end]``, its header row(s) ``text[start:header_end]`` and its body rows
    starting at ``row_starts`` (ascending, each at the start of a line; a row runs to the next row's start, the
    last one to ``end``). ``header_end`` defaults to the first row's start; text between the header and the first
    row (a Markdown table's delimiter line) belongs to neither.

    The chunker cuts a table only at row starts and gives every chunk of it the header as its ``context``.
    """

    start: int
    end: int
    row_starts: tuple[int, ...]
    header_end: int | None = None

    def header(self, text: str) -> str:
        """The header row(s) as they stand in ``text`` (the document's text), surrounding whitespace removed."""
        if not self.row_starts:
            return ""
        end = self.row_starts[0] if self.header_end is None else min(self.header_end, self.row_starts[0])
        return text[self.start : end].strip()


@dataclass
class ParsedDocument:
    """A document's extracted text with its page boundaries and heading structure.

    ``pages`` cover ``text`` in order (formats without pages have one page, number 1); pages are joined with
    a blank line, which belongs to no page. ``sections`` may be empty. ``tables`` are in text order and do not
    overlap.
    """

    text: str
    pages: list[Page]
    mime_type: str
    sections: list[Section] = field(default_factory=list)
    title: str | None = None
    language: str | None = None
    pages_needing_ocr: list[int] = field(default_factory=list)
    whole_sections: bool = False
    """Sections are units (code definitions): chunks merging small sections never hold part of one (a class's
    closing lines) with what follows it."""
    ocr_pages: dict[int, float] = field(default_factory=dict)
    """Pages whose text was read by OCR, with the OCR confidence (0-1)."""
    warnings: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def page_at(self, offset: int) -> int:
        """The page number holding character ``offset`` (a separator belongs to the page before it)."""
        number = self.pages[0].number if self.pages else 1
        for page in self.pages:
            if page.start > offset:
                break
            number = page.number
        return number

    def heading_path_at(self, offset: int) -> tuple[str, ...]:
        """The innermost section's heading path at ``offset``, or ``()``."""
        best: tuple[str, ...] = ()
        for section in self.sections:
            if section.start <= offset < section.end and len(section.heading_path) >= len(best):
                best = section.heading_path
        return best


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk: ``document.text[start:end] == text`` exactly.

    ``context`` is text the chunk is read with but that is not part of its span: the header row(s) of the table
    whose rows it holds (empty for other chunks, and for a table's chunk that begins with its header). What is
    embedded and indexed is :attr:`indexed_text`; ``tokens`` counts that.
    """

    ordinal: int
    text: str
    start: int
    end: int
    tokens: int
    page_start: int
    page_end: int
    heading_path: tuple[str, ...] = ()
    context: str = ""

    @property
    def indexed_text(self) -> str:
        """What is embedded and indexed for the chunk: ``context``, a newline, then ``text`` (or ``text`` alone)."""
        return indexed_text(self.context, self.text)


def indexed_text(context: str, text: str) -> str:
    """A chunk's text as embedded and indexed: its ``context`` (a table's header) on the line before its text."""
    return f"{context}\n{text}" if context else text
