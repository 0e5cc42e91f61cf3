"""Ruled tables in PDFs, reported as :class:`~zhiku.documents.types.Table` records over the PDF parser's page text.

The page text stays PDFium's (the parser's); tables are found with ``pdfplumber``'s table finder (the ruling-lines
strategy: the cells a table's drawn lines enclose) and then located in that text line by line:

1. **Prefilter** (PDFium, about 1 ms a page): pdfplumber parses a page's content stream in Python (20-200 ms a
   page), so it only sees pages whose vector paths form a grid: at least :data:`MIN_GRID_LINES` horizontal rules of
   the same extent (collinear edges merged) joined by vertical edges at three or more positions (two columns). A
   box around a code listing, an underline, a page frame or a diagram is no grid, nor is a grid holding fewer than
   six text objects (a diagram); a chart with grid lines may pass, and is then rejected by step 3.
2. **pdfplumber** finds the tables of those pages. A table's header is its first row with two or more non-empty
   cells (rows above it, such as a title spanning the table, are a caption; a table whose first such row has no
   letters has no header and is left out); its text lines are classed as header
   or body by where they sit. A body line starting left of the first column's right edge begins a row; a line that
   does not continues the row above (a cell's wrapped text).
3. **Location**: each of pdfplumber's lines is matched to the page text's lines by its letters and digits (the two
   extractors differ in spaces, ligatures and hyphens). The table is the longest run of consecutive page lines that
   are body lines of the table, directly preceded by one or more of its header lines; a table with no such header
   or fewer than two body lines in the page text is left out.

Table detection is best-effort: any failure on a page leaves that page without tables, never fails the parse, and
pdfplumber gets :data:`BUDGET_SECONDS` per document at most.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhiku.documents.types import Page, Table

log = logging.getLogger(__name__)

__all__ = ["find_tables"]

#: Seconds of pdfplumber per document at most (about 0.1-0.3 s a page of tables).
BUDGET_SECONDS = 20.0
#: A page is a candidate when this many horizontal lines are each met by three or more vertical edges.
MIN_GRID_LINES = 3
#: Points of tolerance when edges meet or are collinear.
_TOLERANCE = 2.0
#: Thinner than this (points) in one direction, a path is a line in the other direction.
_THIN = 3.0
#: Paths with more segments are not walked: a cell's rectangle has 4 or 5, a curve or a drawing many (walking
#: every path of a page of diagrams costs more than parsing the page).
_MAX_SEGMENTS = 12
#: A grid holding fewer text objects than this is a diagram.
_MIN_GRID_TEXTS = 6
#: A page with more edges than this is a drawing; the first ones decide.
_MAX_EDGES = 20_000


def find_tables(
    path: Path,
    page_texts: Sequence[str],
    pages: Sequence[Page],
    *,
    pdfium_lock: threading.Lock | None = None,
    budget_seconds: float = BUDGET_SECONDS,
) -> list[Table]:
    """The ruled tables of the PDF at ``path`` as records over the parsed text (see the module docs).

    Args:
        path: The PDF.
        page_texts: Each page's final text (``doc.text[page.start:page.end]``), in page order.
        pages: The parsed document's pages, giving each page's offset in the document text.
        pdfium_lock: The lock serialising PDFium calls in this process (PDFium is not thread-safe).
        budget_seconds: pdfplumber sees no more pages once this much time has gone (the pages after that are left
            without tables, so a long report of ruled tables cannot push the parse past its deadline).

    Returns:
        Tables in text order; empty when pdfplumber is not installed or nothing is found.
    """
    try:
        import pdfplumber
    except ImportError:  # an optional capability: the text is parsed all the same
        return []
    with pdfium_lock or contextlib.nullcontext():
        candidates = _grid_pages(path, len(page_texts))
    if not candidates:
        return []
    tables: list[Table] = []
    deadline = time.monotonic() + budget_seconds
    try:
        with pdfplumber.open(path, pages=[index + 1 for index in candidates]) as pdf:
            for plumber_page in pdf.pages:
                if time.monotonic() > deadline:
                    log.info("table detection stopped at page %d of %s (time budget)", plumber_page.page_number, path)
                    break
                index = plumber_page.page_number - 1
                if index >= len(page_texts) or index >= len(pages):
                    continue
                try:
                    found = list(_page_tables(plumber_page, page_texts[index], pages[index].start))
                except Exception as exc:  # noqa: BLE001 - pdfminer's errors on odd content: no tables on this page
                    log.debug("table detection failed on page %d of %s: %s", index + 1, path.name, exc)
                    found = []
                finally:
                    plumber_page.close()
                tables.extend(found)
    except Exception as exc:  # noqa: BLE001 - a file pdfminer cannot open: the text is PDFium's anyway
        log.debug("table detection skipped for %s: %s", path.name, exc)
    return _non_overlapping(tables)


# --------------------------------------------------------------------------------------------- prefilter


def _grid_pages(path: Path, count: int) -> list[int]:
    """0-based indexes of the pages whose paths form a ruled grid (the caller holds the PDFium lock)."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        return []
    found: list[int] = []
    try:
        for index in range(min(count, len(document))):
            try:
                page = document[index]
            except pdfium.PdfiumError:
                continue
            try:
                horizontal, vertical, texts = _edges(page)
                grids = _grids(horizontal, vertical)
                # a table has words in its cells (a header and two rows of two columns at least); a diagram's
                # grid has few
                centres = _centres(page, texts) if grids else []
                if any(
                    sum(1 for x, y in centres if x0 <= x <= x1 and y0 <= y <= y1) >= _MIN_GRID_TEXTS
                    for x0, y0, x1, y1 in grids
                ):
                    found.append(index)
            except pdfium.PdfiumError:
                continue
            finally:
                page.close()
    finally:
        document.close()
    return found


def _edges(page: Any) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]], list[int]]:
    """Horizontal ``(y, x0, x1)`` and vertical ``(x, y0, y1)`` edges of a page's top-level path objects, and the
    indexes of its top-level text objects.

    A thin path is a rule (its bounds); another path of a few segments contributes its straight axis-aligned ones
    (a cell's rectangle), never its bounds (a curve's bounding box is no edge). PDFium's C API directly: the
    Python wrappers of every object of a page of diagrams cost more than parsing the page. Paths inside form
    XObjects are not seen (tables from word processors and LaTeX are drawn on the page itself).
    """
    import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped, unused-ignore]

    horizontal: list[tuple[float, float, float]] = []
    vertical: list[tuple[float, float, float]] = []
    texts: list[int] = []
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    bounds = (ctypes.byref(left), ctypes.byref(bottom), ctypes.byref(right), ctypes.byref(top))
    for index in range(pdfium_raw.FPDFPage_CountObjects(page.raw)):
        obj = pdfium_raw.FPDFPage_GetObject(page.raw, index)
        kind = pdfium_raw.FPDFPageObj_GetType(obj)
        if kind == pdfium_raw.FPDF_PAGEOBJ_TEXT:
            texts.append(index)
            continue
        if kind != pdfium_raw.FPDF_PAGEOBJ_PATH or not pdfium_raw.FPDFPageObj_GetBounds(obj, *bounds):
            continue
        width, height = right.value - left.value, top.value - bottom.value
        if height < _THIN and width >= _THIN:
            horizontal.append(((bottom.value + top.value) / 2, left.value, right.value))
        elif width < _THIN and height >= _THIN:
            vertical.append(((left.value + right.value) / 2, bottom.value, top.value))
        elif width >= _THIN and height >= _THIN:
            for x0, y0, x1, y1 in _line_segments(obj):
                if abs(y1 - y0) < 0.5 and abs(x1 - x0) >= _THIN:
                    horizontal.append((y0, min(x0, x1), max(x0, x1)))
                elif abs(x1 - x0) < 0.5 and abs(y1 - y0) >= _THIN:
                    vertical.append((x0, min(y0, y1), max(y0, y1)))
        if len(horizontal) + len(vertical) > _MAX_EDGES:
            break  # a drawing, not a table: enough edges to decide on
    return horizontal, vertical, texts


def _centres(page: Any, indexes: list[int]) -> list[tuple[float, float]]:
    """The centres of the page's objects at ``indexes``."""
    import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped, unused-ignore]

    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    bounds = (ctypes.byref(left), ctypes.byref(bottom), ctypes.byref(right), ctypes.byref(top))
    centres: list[tuple[float, float]] = []
    for index in indexes:
        if pdfium_raw.FPDFPageObj_GetBounds(pdfium_raw.FPDFPage_GetObject(page.raw, index), *bounds):
            centres.append(((left.value + right.value) / 2, (bottom.value + top.value) / 2))
    return centres


def _line_segments(obj: Any) -> Iterator[tuple[float, float, float, float]]:
    """The straight segments ``(x0, y0, x1, y1)`` of a path object of a few segments, in page space."""
    import pypdfium2.raw as pdfium_raw  # type: ignore[import-untyped, unused-ignore]

    count = pdfium_raw.FPDFPath_CountSegments(obj)
    if count < 0 or count > _MAX_SEGMENTS:
        return
    m = pdfium_raw.FS_MATRIX()
    if not pdfium_raw.FPDFPageObj_GetMatrix(obj, ctypes.byref(m)):
        return
    x, y = ctypes.c_float(), ctypes.c_float()
    previous: tuple[float, float] | None = None
    start: tuple[float, float] | None = None
    for number in range(count):
        segment = pdfium_raw.FPDFPath_GetPathSegment(obj, number)
        if not segment or not pdfium_raw.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y)):
            continue
        point = (m.a * x.value + m.c * y.value + m.e, m.b * x.value + m.d * y.value + m.f)
        kind = pdfium_raw.FPDFPathSegment_GetType(segment)
        if kind == pdfium_raw.FPDF_SEGMENT_LINETO and previous is not None:
            yield (*previous, *point)
        if kind == pdfium_raw.FPDF_SEGMENT_MOVETO:
            start = point
        previous = point
        if pdfium_raw.FPDFPathSegment_GetClose(segment) and start is not None:
            yield (*point, *start)
            previous = start


def _grids(
    horizontal: list[tuple[float, float, float]], vertical: list[tuple[float, float, float]]
) -> list[tuple[float, float, float, float]]:
    """The boxes ``(x0, y0, x1, y1)`` of the ruled grids the edges hold (see the module docs).

    Horizontal edges at one height are merged into lines; lines of the same extent (within the tolerance) are a
    candidate table's rules. It is a grid when :data:`MIN_GRID_LINES` such rules are joined by vertical edges at
    three or more distinct positions (two columns), each vertical edge reaching from one rule to another.
    """
    if len(horizontal) < MIN_GRID_LINES or len(vertical) < 3:
        return []
    by_level: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for y, x0, x1 in horizontal:
        by_level[round(y)].append((x0, x1))
    by_extent: dict[tuple[int, int], list[int]] = defaultdict(list)  # rounded (x0, x1) -> the rules' heights
    for level, spans in by_level.items():
        for x0, x1 in _merged(spans):
            by_extent[(round(x0 / _TOLERANCE), round(x1 / _TOLERANCE))].append(level)
    grids: list[tuple[float, float, float, float]] = []
    for (left, right), levels in by_extent.items():
        if len(levels) < MIN_GRID_LINES:
            continue
        x0, x1 = left * _TOLERANCE - _TOLERANCE, right * _TOLERANCE + _TOLERANCE
        joined = {
            round(x)
            for x, y0, y1 in vertical
            if x0 - _TOLERANCE <= x <= x1 + _TOLERANCE
            and sum(1 for level in levels if y0 - _TOLERANCE <= level <= y1 + _TOLERANCE) >= 2
        }
        if len(joined) >= 3:
            grids.append((x0, min(levels) - _TOLERANCE, x1, max(levels) + _TOLERANCE))
    return grids


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching ``(x0, x1)`` intervals joined."""
    merged: list[tuple[float, float]] = []
    for x0, x1 in sorted(spans):
        if merged and x0 <= merged[-1][1] + _TOLERANCE:
            merged[-1] = (merged[-1][0], max(merged[-1][1], x1))
        else:
            merged.append((x0, x1))
    return merged


# --------------------------------------------------------------------------------------------- location


@dataclass(frozen=True)
class _Line:
    """One of pdfplumber's text lines of a table: its key, whether it is header, and whether it begins a row."""

    key: str
    header: bool
    row_start: bool


def _key(text: str) -> str:
    """Letters and digits only, compatibility-normalised and case-folded: what both extractors agree on."""
    return "".join(char for char in unicodedata.normalize("NFKC", text).casefold() if char.isalnum())


def _page_tables(plumber_page: Any, page_text: str, offset: int) -> Iterator[Table]:
    """The tables pdfplumber finds on a page, located in ``page_text`` (which starts at ``offset``)."""
    lines = page_text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    keys = [_key(line) for line in lines]
    for found in plumber_page.find_tables():
        table_lines = _table_lines(plumber_page, found)
        if table_lines is None:
            continue
        header_keys = {line.key for line in table_lines if line.header and line.key}
        body = {line.key: line for line in table_lines if not line.header and line.key}
        run = _longest_run([index for index, key in enumerate(keys) if key in body])
        if run is None or run[1] - run[0] < 2:
            continue
        first = run[0]
        while first > 0 and keys[first - 1] in header_keys:
            first -= 1
        if first == run[0]:
            continue  # no header in the text right above the rows: nothing to repeat
        row_starts = [
            offset + starts[index] for index in range(run[0], run[1]) if index == run[0] or body[keys[index]].row_start
        ]
        header_end = offset + starts[run[0] - 1] + len(lines[run[0] - 1])
        end = offset + starts[run[1] - 1] + len(lines[run[1] - 1])
        yield Table(start=offset + starts[first], end=end, row_starts=tuple(row_starts), header_end=header_end)


def _table_lines(plumber_page: Any, found: Any) -> list[_Line] | None:
    """pdfplumber's text lines inside a table, classed (``None``: no header row with two or more cells)."""
    cells = found.extract()
    header_row = next(
        (index for index, row in enumerate(cells) if sum(1 for cell in row if cell and cell.strip()) >= 2), None
    )
    if header_row is None or header_row >= len(found.rows) - 1:
        return None
    if not any(char.isalpha() for cell in cells[header_row] if cell for char in cell):
        return None  # a first row of numbers is data, not column names
    _x0, header_top, _x1, header_bottom = found.rows[header_row].bbox
    first_column = [cell for cell in (found.columns[0].cells if found.columns else []) if cell is not None]
    column_right = min((cell[2] for cell in first_column), default=found.bbox[2])
    classed: list[_Line] = []
    for line in plumber_page.crop(found.bbox).extract_text_lines(return_chars=False):
        middle = (line["top"] + line["bottom"]) / 2
        if middle < header_top:
            continue  # a caption above the header
        header = middle <= header_bottom
        classed.append(_Line(_key(line["text"]), header, not header and line["x0"] < column_right))
    return classed


def _longest_run(indexes: list[int]) -> tuple[int, int] | None:
    """The longest ``[first, last + 1)`` of consecutive integers in ascending ``indexes``."""
    best: tuple[int, int] | None = None
    run_start = None
    for position, index in enumerate(indexes):
        if run_start is None or index != indexes[position - 1] + 1:
            run_start = index
        if best is None or index + 1 - run_start > best[1] - best[0]:
            best = (run_start, index + 1)
    return best


def _non_overlapping(tables: list[Table]) -> list[Table]:
    """Tables in text order, dropping any that overlaps the one before it (two finds of the same rows)."""
    kept: list[Table] = []
    for table in sorted(tables, key=lambda table: (table.start, -table.end)):
        if not kept or table.start >= kept[-1].end:
            kept.append(table)
    return kept
