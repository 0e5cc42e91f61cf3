"""HTML parser: main-content extraction with headings kept as sections.

Pipeline:

1. Decode with ``bs4.UnicodeDammit`` (BOM, ``<meta charset>``, then ``charset-normalizer``).
2. Remove what is never content: scripts, styles, forms controls, ``<nav>``/``<aside>``, page-level
   ``<header>``/``<footer>`` and ARIA landmarks for navigation, banners, footers and search.
3. Pick a root: the single ``<article>``, else ``<main>``/``role=main``, else ``<body>``.
4. For pages with real amounts of text, ``trafilatura`` (the best-scoring open-source main-content extractor)
   finds the article inside that root and returns it as XML with headings, paragraphs, lists and tables;
   short pages, or pages where trafilatura keeps almost nothing, are walked directly.

Tables become one line per row (cells joined by ``" | "``) and are reported as tables: the header is the leading
rows in ``<thead>`` or made only of ``<th>`` cells (trafilatura: ``role="head"``), else the first row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import trafilatura
from bs4 import BeautifulSoup, UnicodeDammit
from bs4.element import NavigableString, PreformattedString, Tag

from zhiku.documents.parsers.text import Block, assemble, normalize_newlines, remove_control_chars, single_page
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import ParsedDocument
from zhiku.errors import CorruptDocumentError, DocumentError, EmptyDocumentError, UnsupportedTypeError

#: Below this many characters of candidate text the page is walked directly (trafilatura needs some mass).
EXTRACTOR_MIN_CHARS = 1000
#: trafilatura's result is used only if it keeps at least this share of the candidate text.
EXTRACTOR_MIN_SHARE = 0.2

_DROP_ALWAYS = (
    "script",
    "style",
    "noscript",
    "template",
    "iframe",
    "svg",
    "canvas",
    "object",
    "embed",
    "button",
    "select",
    "input",
    "textarea",
    "nav",
    "aside",
    "dialog",
    "link",
    "meta",
)
_DROP_OUTSIDE_ARTICLE = ("header", "footer")
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"})

_HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_PARAGRAPH_TAGS = frozenset({"p", "address", "caption", "figcaption", "summary", "legend"})
_PRE_TAGS = frozenset({"pre"})
_LIST_TAGS = frozenset({"ul", "ol", "dl", "menu", "list"})
_ITEM_TAGS = frozenset({"li", "dt", "dd", "item"})
_GROUP_TAGS = _LIST_TAGS | {"table"}
_ROW_TAGS = frozenset({"tr", "row"})
_CELL_TAGS = frozenset({"td", "th", "cell"})
_BREAK_TAGS = frozenset({"br", "lb", "hr"})
_SKIP_TAGS = frozenset({"img", "graphic", "picture", "video", "audio", "map", "area", "head", "title"})
_BLOCK_TAGS = frozenset(
    {
        "div",
        "section",
        "article",
        "main",
        "body",
        "html",
        "blockquote",
        "quote",
        "figure",
        "form",
        "fieldset",
        "details",
        "center",
        "hgroup",
        "header",
        "footer",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "doc",
        "noframes",
    }
)
#: Stands for ``<br>`` while collecting text (source newlines are mere whitespace); NUL never survives decoding.
_BREAK = "\x00"
_EDIT_LINK = re.compile(r"\s*\[\s*edit\s*\]\s*$", re.IGNORECASE)


def parse(path: Path, detected: DetectedType, *, filename: str | None = None) -> ParsedDocument:
    """Extract the main content of an HTML page as paragraphs separated by blank lines, headings as sections.

    Raises:
        UnsupportedTypeError: the bytes cannot be decoded as text.
        EmptyDocumentError: no content text remains after removing navigation and boilerplate.
        CorruptDocumentError: the HTML tooling failed on this input.
    """
    name = filename or path.name
    data = path.read_bytes()
    try:
        markup = _decode(data, detected.encoding, name)
        soup = BeautifulSoup(markup, "lxml")
        title = _title(soup)
        _remove_boilerplate(soup)
        root = _content_root(soup)
        blocks = list(walk(root)) if root is not None else []
        candidate_chars = sum(len(block.text) for block in blocks)
        if candidate_chars >= EXTRACTOR_MIN_CHARS and root is not None:
            extracted = _extract_main(root)
            if sum(len(block.text) for block in extracted) >= EXTRACTOR_MIN_SHARE * candidate_chars:
                blocks = extracted
        text, sections, tables = assemble(blocks)
    except DocumentError:
        raise
    except Exception as exc:  # bs4, lxml and trafilatura raise a zoo of types on pathological input
        raise CorruptDocumentError(f"{name} could not be parsed as HTML: {type(exc).__name__}: {exc}") from exc
    if not text.strip():
        raise EmptyDocumentError(f"{name} has no text content (after removing navigation, scripts and boilerplate)")
    if title is None:
        title = next((block.text for block in blocks if block.heading_level == 1), None)
    return ParsedDocument(
        text=text, pages=single_page(text), mime_type=detected.mime_type, sections=sections, title=title, tables=tables
    )


def _decode(data: bytes, sniffed: str | None, name: str) -> str:
    """Decode by BOM, then the page's declared charset, then detection (the sniffed encoding as a last resort)."""
    dammit = UnicodeDammit(data, is_html=True)
    if dammit.unicode_markup is None and sniffed:
        dammit = UnicodeDammit(data, known_definite_encodings=[sniffed], is_html=True)
    if dammit.unicode_markup is None:
        raise UnsupportedTypeError(f"{name} could not be decoded as text in any plausible encoding")
    return remove_control_chars(normalize_newlines(dammit.unicode_markup))


def _title(soup: BeautifulSoup) -> str | None:
    """``og:title``, else ``<title>``."""
    og_title = soup.find("meta", attrs={"property": "og:title"})
    if isinstance(og_title, Tag):
        content = og_title.get("content")
        if isinstance(content, str) and content.strip():
            return " ".join(content.split())
    title = soup.find("title")
    if isinstance(title, Tag):
        text = " ".join(title.get_text(" ").split())
        if text:
            return text
    return None


def _remove_boilerplate(soup: BeautifulSoup) -> None:
    """Delete elements that are never the content (in place)."""
    for element in soup.find_all(_DROP_ALWAYS):
        element.decompose()
    for element in soup.find_all(True, attrs={"hidden": True}):
        if isinstance(element, Tag) and not element.decomposed:
            element.decompose()
    for element in soup.find_all(True, attrs={"role": True}):
        if not isinstance(element, Tag) or element.decomposed:
            continue
        role = element.get("role")
        if isinstance(role, str) and role.strip().lower() in _DROP_ROLES and not _inside_content(element):
            element.decompose()
    for element in soup.find_all(_DROP_OUTSIDE_ARTICLE):
        if isinstance(element, Tag) and not element.decomposed and not _inside_content(element):
            element.decompose()


def _inside_content(element: Tag) -> bool:
    """Whether ``element`` sits in an ``<article>`` or ``<main>`` (where headers and footers belong to it)."""
    return any(parent.name in {"article", "main"} for parent in element.parents)


def _content_root(soup: BeautifulSoup) -> Tag | None:
    """The single ``<article>``, else ``<main>`` / ``role=main``, else ``<body>`` (or the whole document)."""
    articles = soup.find_all("article")
    if len(articles) == 1 and isinstance(articles[0], Tag):
        return articles[0]
    for candidate in (soup.find("main"), soup.find(True, attrs={"role": "main"}), soup.body):
        if isinstance(candidate, Tag):
            return candidate
    return soup


def _extract_main(root: Tag) -> list[Block]:
    """Main content of ``root`` by trafilatura (XML output), as blocks; empty if it finds nothing."""
    # a whole document, not the bare fragment: given a fragment trafilatura falls back to a flat extraction
    document = f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>{root}</body></html>'
    xml = trafilatura.extract(
        document,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        include_formatting=False,
        deduplicate=False,
    )
    if not xml:
        return []
    tree = BeautifulSoup(xml, "xml")
    main = tree.find("main")
    return list(walk(main, xml=True)) if isinstance(main, Tag) else []


def walk(root: Tag, *, xml: bool = False) -> Iterator[Block]:
    """Blocks of an HTML element tree, or of trafilatura's XML (``xml=True``: ``head``, ``p``, ``list``, ...)."""
    walker = _Walker(xml=xml)
    walker.visit(root)
    walker.flush()
    return iter(walker.blocks)


class _Walker:
    """Depth-first walk collecting inline text into paragraphs, with headings, list items and table rows."""

    def __init__(self, *, xml: bool) -> None:
        self.xml = xml
        self.blocks: list[Block] = []
        self.buffer: list[str] = []
        self.groups = 0

    def flush(self) -> None:
        text = _collapse("".join(self.buffer))
        self.buffer.clear()
        if text:
            self.blocks.append(Block(text))

    def visit(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, PreformattedString):
                continue  # comments, CDATA, doctype, processing instructions
            if isinstance(child, NavigableString):
                self.buffer.append(str(child))
            elif isinstance(child, Tag):
                self.visit_tag(child)

    def visit_tag(self, tag: Tag) -> None:
        name = tag.name.lower()
        level = self._heading_level(tag, name)
        if level is not None:
            self.flush()
            text = _EDIT_LINK.sub("", _collapse(_inline_text(tag), single_line=True))
            if text:
                self.blocks.append(Block(text, heading_level=level))
            return
        if name in _SKIP_TAGS:
            return
        if name in _BREAK_TAGS:
            self.buffer.append(_BREAK)
            return
        if name in _PRE_TAGS or (self.xml and name == "code" and tag.parent is not None and tag.parent.name == "main"):
            self.flush()
            self.blocks.append(Block(_preformatted(tag)))
            return
        if name in _PARAGRAPH_TAGS:
            self.flush()
            self.visit(tag)
            self.flush()
            return
        if name in _LIST_TAGS or name == "table":
            self.flush()
            self.groups += 1
            self._visit_group(tag, self.groups)
            return
        if name in _ROW_TAGS or name in _ITEM_TAGS:  # stray rows / items outside a list or table
            self.flush()
            self.groups += 1
            self._visit_group(tag, self.groups, include_self=True)
            return
        if name in _BLOCK_TAGS:
            self.flush()
            self.visit(tag)
            self.flush()
            return
        self.visit(tag)  # inline element

    def _heading_level(self, tag: Tag, name: str) -> int | None:
        if name in _HEADING_TAGS:
            return int(name[1])
        if self.xml and name == "head":
            rend = tag.get("rend")
            if isinstance(rend, str) and re.fullmatch(r"h[1-6]", rend):
                return int(rend[1])
            return 2
        return None

    def _visit_group(self, container: Tag, group: int, *, include_self: bool = False) -> None:
        """Items of a list or rows of a table as one group of lines; nested lists/tables become their own groups."""
        if include_self:
            members = [container]
        else:
            members = [
                element
                for element in container.find_all(_ROW_TAGS | _ITEM_TAGS)
                if isinstance(element, Tag) and _nearest_group(element) is container
            ]
        table = not include_self and container.name.lower() == "table"
        rows: list[tuple[list[str], bool]] = []  # a table's rows: cells, and whether it is a header row
        for element in members:
            if element.name.lower() in _ROW_TAGS:
                cell_tags = [
                    cell
                    for cell in element.find_all(_CELL_TAGS)
                    if isinstance(cell, Tag) and _nearest_row(cell) is element
                ]
                cells = [_collapse(_inline_text(cell), single_line=True) for cell in cell_tags]
                if not any(cells):
                    continue
                if table:
                    rows.append((cells, _is_header_row(element, cell_tags)))
                else:
                    self.blocks.append(Block(" | ".join(cells), group=group))
                continue
            text = _collapse(_inline_text(element, skip=_GROUP_TAGS), single_line=True)
            if text:
                self.blocks.append(Block(text, group=group))
            for nested in element.find_all(_GROUP_TAGS):
                if isinstance(nested, Tag) and _nearest_group(nested) is _nearest_group(element):
                    self.groups += 1
                    self._visit_group(nested, self.groups)
        headers = next((index for index, (_cells, header) in enumerate(rows) if not header), len(rows))
        if headers == 0 and len(rows) >= 3 and len(rows[0][0]) >= 2:
            headers = 1  # no marked header: a data table's first row names its columns
        for index, (cells, _header) in enumerate(rows):
            kind: Literal["header", "body"] = "header" if index < headers else "body"
            self.blocks.append(Block(" | ".join(cells), group=group, table_row=kind))


def _is_header_row(row: Tag, cells: list[Tag]) -> bool:
    """A row in ``<thead>``, or whose cells are all ``<th>`` (trafilatura's XML: ``role="head"``)."""
    section = row.find_parent(["thead", "tbody", "tfoot", "table"])
    if section is not None and section.name == "thead":
        return True
    return bool(cells) and all(cell.name.lower() == "th" or cell.get("role") == "head" for cell in cells)


def _nearest_group(element: Tag) -> Tag | None:
    """The closest enclosing list or table of ``element``."""
    for parent in element.parents:
        if parent.name in _GROUP_TAGS:
            return parent
    return None


def _nearest_row(element: Tag) -> Tag | None:
    for parent in element.parents:
        if parent.name in _ROW_TAGS:
            return parent
    return None


def _inline_text(tag: Tag, *, skip: frozenset[str] = frozenset()) -> str:
    """All text below ``tag`` (line breaks as newlines), leaving out subtrees named in ``skip``."""
    parts: list[str] = []

    def collect(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, PreformattedString):
                continue
            if isinstance(child, NavigableString):
                parts.append(str(child))
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name in skip or name in _SKIP_TAGS:
                    continue
                if name in _BREAK_TAGS:
                    parts.append(_BREAK)
                elif name in _BLOCK_TAGS or name in _PARAGRAPH_TAGS or name in _ITEM_TAGS or name in _ROW_TAGS:
                    parts.append(" ")
                    collect(child)
                    parts.append(" ")
                else:
                    collect(child)

    collect(tag)
    return "".join(parts)


def _preformatted(tag: Tag) -> str:
    """Text of a ``<pre>`` block with its whitespace kept (trailing spaces and blank edges removed)."""
    lines = [line.rstrip() for line in _inline_text(tag).replace(_BREAK, "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _collapse(text: str, *, single_line: bool = False) -> str:
    """Collapse whitespace runs (newlines and NBSP included) to one space; ``<br>`` breaks become newlines."""
    if single_line:
        return " ".join(text.replace(_BREAK, " ").split())
    lines = (" ".join(line.split()) for line in text.split(_BREAK))
    return "\n".join(line for line in lines if line)
