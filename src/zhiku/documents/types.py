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


@dataclass
class ParsedDocument:
    """A document's extracted text with its page boundaries and heading structure.

    ``pages`` cover ``text`` in order (formats without pages have one page, number 1); pages are joined with
    a blank line, which belongs to no page. ``sections`` may be empty.
    """

    text: str
    pages: list[Page]
    mime_type: str
    sections: list[Section] = field(default_factory=list)
    title: str | None = None
    language: str | None = None
    pages_needing_ocr: list[int] = field(default_factory=list)
    ocr_pages: dict[int, float] = field(default_factory=dict)
    """Pages whose text was read by OCR, with the OCR confidence (0-1)."""
    warnings: list[str] = field(default_factory=list)

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
    """One chunk: ``document.text[start:end] == text`` exactly."""

    ordinal: int
    text: str
    start: int
    end: int
    tokens: int
    page_start: int
    page_end: int
    heading_path: tuple[str, ...] = ()
