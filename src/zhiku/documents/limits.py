"""How much text one document may yield: checked while parsing, so that a huge or inflating file fails its own
job with a clear reason instead of exhausting the memory of the process that parses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zhiku.documents.types import ParsedDocument
from zhiku.errors import DocumentTooLargeError

if TYPE_CHECKING:  # not at run time: the parsing processes start faster without the settings machinery
    from zhiku.config import Settings

MAX_BYTES_PER_CHAR = 4
"""No text encoding zhiku reads (UTF-8/16/32, GB18030, Big5, Shift-JIS ...) spends more bytes on a character."""


@dataclass(frozen=True)
class ParseLimits:
    """The parsing budget of one document (settings ``max_document_chars``, ``max_page_chars``,
    ``parse_memory_bytes`` and ``parse_timeout_seconds``)."""

    max_document_chars: int = 10_000_000
    max_page_chars: int = 1_000_000
    memory_bytes: int = 1024 * 1024 * 1024
    timeout_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        """The limits the settings give."""
        return cls(
            settings.max_document_chars,
            settings.max_page_chars,
            settings.parse_memory_bytes,
            settings.parse_timeout_seconds,
        )

    def check_text_bytes(self, size: int, name: str) -> None:
        """Refuse, before reading it, a text file that must decode to more than ``max_document_chars``."""
        if size > MAX_BYTES_PER_CHAR * self.max_document_chars:
            raise DocumentTooLargeError(
                f"document too large to index: {name} is {size:,} bytes of text, at least "
                f"{size // MAX_BYTES_PER_CHAR:,} characters, limit {self.max_document_chars:,}; "
                "raise ZHIKU_MAX_DOCUMENT_CHARS or split the file"
            )

    def check_document(self, document: ParsedDocument, name: str, *, paged: bool) -> None:
        """Refuse a parsed document over the character limits (per page only for ``paged`` formats)."""
        if len(document.text) > self.max_document_chars:
            raise DocumentTooLargeError(
                f"document too large to index: {name} has {len(document.text):,} characters, limit "
                f"{self.max_document_chars:,}; raise ZHIKU_MAX_DOCUMENT_CHARS or split the file"
            )
        if not paged:
            return
        for page in document.pages:
            if page.end - page.start > self.max_page_chars:
                raise DocumentTooLargeError(
                    f"document too large to index: page {page.number} of {name} has {page.end - page.start:,} "
                    f"characters, limit {self.max_page_chars:,} per page; raise ZHIKU_MAX_PAGE_CHARS"
                )
