"""Markdown parser on ``markdown-it-py``: the text is the Markdown source itself, sections come from headings.

Keeping the source means offsets (and so chunks) refer to what the author wrote; headings (ATX ``#`` and
setext underlines) are found by the CommonMark parser, so ``#`` lines inside code fences are not headings.
GFM pipe tables (the parser's ``table`` rule) are reported as tables: the header line as the header (the
delimiter line under it only costs tokens when repeated), each body line a row.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from zhiku.documents.parsers.text import read_source_text, single_page
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import ParsedDocument, Section, Table
from zhiku.errors import CorruptDocumentError

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<body>.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(?P<title>.+?)[ \t]*$", re.MULTILINE)
_INLINE_TEXT_TYPES = frozenset({"text", "code_inline"})


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Parse Markdown: the source as text, one section per heading, title from front matter or the first h1."""
    name = filename or path.name
    text = read_source_text(path, detected, name)
    try:
        sections, first_h1, tables = markdown_structure(text)
    except Exception as exc:  # markdown-it should accept any input; never let a parser bug escape raw
        raise CorruptDocumentError(f"{name} could not be parsed as Markdown: {type(exc).__name__}: {exc}") from exc
    title = _front_matter_title(text) or first_h1
    return ParsedDocument(
        text=text,
        pages=single_page(text),
        mime_type=detected.mime_type,
        sections=sections,
        title=title,
        tables=tables,
    )


def markdown_sections(text: str) -> tuple[list[Section], str | None]:
    """Sections of Markdown ``text`` from its headings, and the first level-1 heading's text.

    A heading's section runs from the start of its line to the next heading of the same or a higher level.
    """
    sections, first_h1, _tables = markdown_structure(text)
    return sections, first_h1


def markdown_structure(text: str) -> tuple[list[Section], str | None, list[Table]]:
    """:func:`markdown_sections` and the GFM pipe tables of ``text`` (header and delimiter line, then rows)."""
    source = _blank_front_matter(text)
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    line_starts = [0]
    for line in text.split("\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)

    headings: list[tuple[int, str, int]] = []  # (level, title, start offset)
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        inline = tokens[index + 1] if index + 1 < len(tokens) else None
        title = _inline_text(inline) if inline is not None else ""
        if title:
            headings.append((int(token.tag[1:]), title, line_starts[token.map[0]]))

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    for position, (level, title, start) in enumerate(headings):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        end = next((later[2] for later in headings[position + 1 :] if later[0] <= level), len(text))
        sections.append(Section(start=start, end=end, heading_path=tuple(item[1] for item in stack)))
    first_h1 = next((title for level, title, _start in headings if level == 1), None)
    return sections, first_h1, _tables(tokens, line_starts, len(text))


def _tables(tokens: list[Token], line_starts: list[int], length: int) -> list[Table]:
    """Tables from the token stream: ``table_open``'s lines, the header ``thead``'s, a row at each body ``tr_open``."""
    tables: list[Table] = []
    lines: list[int] | None = None  # the open table's [first, last) lines
    header_end: int | None = None
    rows: list[int] = []
    in_body = False
    for token in tokens:
        if token.type == "table_open" and token.map is not None:
            lines, rows, in_body, header_end = token.map, [], False, None
        elif token.type == "thead_open" and token.map is not None:
            header_end = line_starts[token.map[1]] - 1
        elif token.type == "tbody_open":
            in_body = True
        elif token.type == "tr_open" and in_body and lines is not None and token.map is not None:
            rows.append(line_starts[token.map[0]])
        elif token.type == "table_close" and lines is not None:
            if rows:  # a header without body rows needs no table treatment
                end = min(length, line_starts[lines[1]] - 1)
                start = line_starts[lines[0]]
                tables.append(Table(start=start, end=end, row_starts=tuple(rows), header_end=header_end))
            lines = None
    return tables


def _inline_text(token: Token) -> str:
    """The plain text of a heading's inline content (emphasis, links and code marks removed)."""
    if token.type != "inline":
        return ""
    children = token.children or []
    text = "".join(child.content for child in children if child.type in _INLINE_TEXT_TYPES)
    return " ".join(text.split())


def _blank_front_matter(text: str) -> str:
    """Replace a YAML front matter block with empty lines (so line numbers stay the same)."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text
    return "\n" * match.group(0).count("\n") + text[match.end() :]


def _front_matter_title(text: str) -> str | None:
    match = _FRONT_MATTER.match(text)
    if match is None or not match.group("body"):
        return None
    found = _FRONT_MATTER_TITLE.search(match.group("body"))
    if found is None:
        return None
    title = found.group("title").strip().strip("\"'").strip()
    return title or None
