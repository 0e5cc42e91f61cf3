"""Source code parser: decoded like plain text, with the language set and top-level definitions as sections."""

from __future__ import annotations

import re
from pathlib import Path

from zhiku.documents.parsers.text import read_source_text, single_page
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import ParsedDocument, Section

#: Top-level definitions per language (column 0, so methods and nested functions stay in their parent).
_DEFINITIONS: dict[str, re.Pattern[str]] = {
    "python": re.compile(r"^(?:async\s+)?(?P<kind>def|class)\s+(?P<name>[A-Za-z_]\w*)", re.MULTILINE),
    "go": re.compile(r"^(?P<kind>func|type)\s+(?:\([^)]*\)\s*)?(?P<name>[A-Za-z_]\w*)", re.MULTILINE),
    "rust": re.compile(
        r"^(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?(?P<kind>fn|struct|enum|trait|impl|mod)\b"
        r"(?:<[^>]*>)?\s+(?P<name>[A-Za-z_][\w:<>, ]*?)\s*[({<;]",
        re.MULTILINE,
    ),
    "javascript": re.compile(
        r"^(?:export\s+)?(?:default\s+)?(?:async\s+)?(?P<kind>function\*?|class)\s+(?P<name>[A-Za-z_$][\w$]*)",
        re.MULTILINE,
    ),
}
_DEFINITIONS["typescript"] = re.compile(
    r"^(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?"
    r"(?P<kind>function\*?|class|interface|type|enum)\s+(?P<name>[A-Za-z_$][\w$]*)",
    re.MULTILINE,
)
_DECORATOR = re.compile(r"@")  # used with match(text, pos), which anchors at pos


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Parse a source file: its text verbatim (newlines normalised), ``language`` set, definitions as sections."""
    name = filename or path.name
    text = read_source_text(path, detected, name)
    return ParsedDocument(
        text=text,
        pages=single_page(text),
        mime_type=detected.mime_type,
        sections=code_sections(text, detected.language),
        language=detected.language,
    )


def code_sections(text: str, language: str | None) -> list[Section]:
    """One section per top-level definition, from the definition (and its decorators) to the next one."""
    pattern = _DEFINITIONS.get(language or "")
    if pattern is None:
        return []
    starts: list[tuple[int, str]] = []
    for match in pattern.finditer(text):
        start = _include_decorators(text, match.start()) if language == "python" else match.start()
        starts.append((start, f"{match.group('kind')} {match.group('name').strip()}"))
    sections: list[Section] = []
    for index, (start, label) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        if end > start:
            sections.append(Section(start=start, end=end, heading_path=(label,)))
    return sections


def _include_decorators(text: str, start: int) -> int:
    """Move ``start`` up over the ``@decorator`` lines directly above a Python definition."""
    while start > 0:
        previous_start = text.rfind("\n", 0, start - 1) + 1
        if not _DECORATOR.match(text, previous_start):
            break
        start = previous_start
    return start
