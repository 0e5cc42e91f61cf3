"""Source code parser: decoded like plain text, with the language set and its definitions as sections.

Sections come from the language's tree-sitter grammar (:mod:`zhiku.documents.syntax`): one per definition,
nested (a method inside its class), each from its doc comments and decorators to its end, under the heading path
``(file path, "class Foo", "def bar")``. The whole file is a section too, so module-level code between definitions
is chunked under the file's path. Without a grammar (or if it fails) top-level definitions are found with
regular expressions, for the languages that have them here.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

from zhiku.documents.parsers.text import read_source_text, single_page
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import ParsedDocument, Section

logger = logging.getLogger(__name__)

#: The file path heading is cut (in the middle of the path, keeping the file's name) to this many characters.
MAX_PATH_CHARS = 200
#: A definition's label found by regular expression is cut to this many characters.
MAX_LABEL_CHARS = 120

try:  # tree-sitter is a dependency; without it (a broken install) the regular expressions still work
    from zhiku.documents import syntax
except ImportError:  # pragma: no cover
    syntax = None  # type: ignore[assignment]

#: Top-level definitions per language, the fallback without a grammar (column 0: methods stay in their class).
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
        sections=code_sections(text, detected.language, name),
        language=detected.language,
        whole_sections=True,
    )


def code_sections(text: str, language: str | None, filename: str = "") -> list[Section]:
    """The file as one section headed by its path, and one section per definition below it (in order).

    ``filename`` is the name (or relative path) the file was given; it heads every section, sanitised
    (:func:`display_path`).
    """
    file_path = (display_path(filename),)
    sections = [Section(start=0, end=len(text), heading_path=file_path)]
    found = _syntax_definitions(text, language, filename)
    if found is None:
        sections += [
            Section(start, end, (*file_path, label)) for start, end, label in _regex_definitions(text, language)
        ]
        return sections
    pending: list[tuple[syntax.Definition, tuple[str, ...]]] = [(item, file_path) for item in reversed(found)]
    while pending:  # depth first, in document order
        definition, parent = pending.pop()
        heading = (*parent, definition.label)
        if definition.end > definition.start:
            sections.append(Section(start=definition.start, end=definition.end, heading_path=heading))
        pending += [(child, heading) for child in reversed(definition.children)]
    return sections


def _syntax_definitions(text: str, language: str | None, filename: str) -> list[syntax.Definition] | None:
    """Definitions from the grammar, or ``None`` (no grammar, or it failed: the regexes then take over)."""
    if syntax is None:
        return None
    try:
        return syntax.definitions(text, language, filename)
    except Exception:  # a grammar's failure must not fail the document; its text is still indexed
        logger.warning(
            "tree-sitter failed on %s (%s); falling back to regular expressions", filename, language, exc_info=True
        )
        return None


def display_path(filename: str) -> str:
    """``filename`` as a heading: ``/`` separators, printable characters only, at most :data:`MAX_PATH_CHARS`.

    A long path loses its middle folders (``src/…/deep/mod.py``), so its root and its file name stay readable.
    """
    cleaned = "".join(
        ch if ch.isprintable() else " " if unicodedata.category(ch) == "Zs" else ""
        for ch in filename.replace("\\", "/")
    )
    cleaned = re.sub(r"/{2,}", "/", cleaned).strip()
    if len(cleaned) > MAX_PATH_CHARS:
        head = cleaned[: MAX_PATH_CHARS // 4]
        tail = cleaned[len(cleaned) - (MAX_PATH_CHARS - len(head) - 1) :]
        cleaned = f"{head}…{tail}"
    return cleaned or "unnamed"


def _regex_definitions(text: str, language: str | None) -> list[tuple[int, int, str]]:
    """Top-level definitions by regular expression: from each one (and its decorators) to the next one."""
    pattern = _DEFINITIONS.get(language or "")
    if pattern is None:
        return []
    starts: list[tuple[int, str]] = []
    for match in pattern.finditer(text):
        start = _include_decorators(text, match.start()) if language == "python" else match.start()
        label = " ".join(f"{match.group('kind')} {match.group('name')}".split())  # one line
        starts.append((start, "".join(ch for ch in label if ch.isprintable())[:MAX_LABEL_CHARS]))
    found: list[tuple[int, int, str]] = []
    for index, (start, label) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        if end > start:
            found.append((start, end, label))
    return found


def _include_decorators(text: str, start: int) -> int:
    """Move ``start`` up over the ``@decorator`` lines directly above a Python definition."""
    while start > 0:
        previous_start = text.rfind("\n", 0, start - 1) + 1
        if not _DECORATOR.match(text, previous_start):
            break
        start = previous_start
    return start
