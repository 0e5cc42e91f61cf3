"""Tables through the real pipeline: a long table is chunked into row groups under its header, the header is
embedded and indexed with every group, and a hit shows it as ``context`` (issue #21, tables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from zhiku.api.schemas import HitOut
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.pipeline.tasks import job_runner
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search
from zhiku.storage.models import Chunk, KnowledgeBase

STATES = [
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
    "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska", "Nevada",
    "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio", "Oklahoma",
    "Oregon", "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah",
    "Vermont", "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming",
]  # fmt: skip
COLUMNS = ["Permit", "Handgun", "Long Gun", "Multiple"]
NICS_HEADER = "State | " + " | ".join(COLUMNS)


def count(row: int, column: int) -> int:
    return 100 + (row * 37 + column * 101) % 900


def write_nics(path: Path) -> None:
    """Like the FBI's NICS report of November 2015: one row per state, one column per kind of check."""
    head = "".join(f"<th>{name}</th>" for name in ("State", *COLUMNS))
    body = "".join(
        f"<tr><td>{state}</td>" + "".join(f"<td>{count(i, j)}</td>" for j in range(len(COLUMNS))) + "</tr>"
        for i, state in enumerate(STATES)
    )
    path.write_text(
        "<html><head><title>NICS</title></head><body><h1>NICS firearm checks, November 2015</h1>"
        "<p>Counts by state, November 2015.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><p>Source: FBI.</p></body></html>",
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Zhiku, KnowledgeBase]]:
    root = tmp_path_factory.mktemp("tables")
    write_nics(root / "nics.html")
    zhiku = Zhiku(Settings(home=root / "home"))
    kb = create_knowledge_base(zhiku, "tables", chunk_tokens=96, chunk_overlap=8)
    with job_runner(zhiku) as runner:
        outcome = register_file(zhiku, kb, root / "nics.html")
        assert outcome.job_id is not None
        runner.wait_for([outcome.job_id], timeout=300)
    yield zhiku, kb
    zhiku.close()


def test_the_chunks_of_a_long_table_carry_its_header(indexed: tuple[Zhiku, KnowledgeBase]) -> None:
    zhiku, _kb = indexed
    with zhiku.db.session() as session:
        chunks = list(session.scalars(select(Chunk).order_by(Chunk.ordinal)))
    table = [chunk for chunk in chunks if " | " in chunk.text]
    assert len(table) >= 4  # 50 rows do not fit one chunk of 96 tokens
    # the caption goes with the header and the first rows; every later group is under the header
    assert table[0].text.startswith(f"Counts by state, November 2015.\n\n{NICS_HEADER}\n")
    assert table[0].context == ""
    assert all(chunk.context == NICS_HEADER for chunk in table[1:])
    assert all(chunk.text.split(" | ")[0] in STATES for chunk in table[1:])  # each group begins at a row


def test_a_question_about_a_row_is_answered_from_one_chunk(indexed: tuple[Zhiku, KnowledgeBase]) -> None:
    """The winning chunk holds the row, and its context the header that says which number is which."""
    zhiku, kb = indexed
    query = "how many long gun background checks were there in Oklahoma"
    best = search(zhiku, kb, query, SearchOptions(top_k=3))[0]
    assert best.context == NICS_HEADER
    row = next((line for line in best.text.split("\n") if line.startswith("Oklahoma | ")), None)
    assert row is not None, f"the Oklahoma row is not in the best hit: {best.text!r}"
    values = dict(zip(best.context.split(" | "), row.split(" | "), strict=True))
    assert values["Long Gun"] == str(count(STATES.index("Oklahoma"), COLUMNS.index("Long Gun")))
    out = HitOut.of(best)  # what API and MCP clients see: the header to show above the rows
    assert out.context == NICS_HEADER
    assert out.text == best.text


def test_the_header_is_indexed_with_every_row_group(indexed: tuple[Zhiku, KnowledgeBase]) -> None:
    """BM25 finds a header word in a row group whose own text does not have it."""
    zhiku, kb = indexed
    hits = search(zhiku, kb, "Wyoming handgun permit", SearchOptions(mode="lexical", top_k=3))
    assert hits[0].context == NICS_HEADER
    assert "Wyoming | " in hits[0].text
    assert "Handgun" not in hits[0].text


YEARS = range(1990, 2022)
YEAR_STATES = ["Texas", "Ohio", "Utah", "Iowa", "Maine", "Idaho"]


def test_which_state_had_the_most_checks_in_2015(tmp_path: Path, pgvector_url: str) -> None:
    """One row per year, one column per state: the 2015 row means nothing without the header naming the states.

    On the pgvector store, whose BM25 uses zhiku's own terms: Qdrant Edge's text index matches no digit-only term
    (``2015`` finds nothing lexically there), so the embedded store ranks the year's row by the dense side alone.
    """

    def checks(year: int, state: int) -> int:
        value = 10_000 + 1_237 * ((state * 7 + year * 3) % 11)
        return value + 50_000 if (year, YEAR_STATES[state]) == (2015, "Utah") else value  # Utah: a middle column

    header = "Year | " + " | ".join(YEAR_STATES)
    rows = "\n".join(
        f"| {year} | " + " | ".join(str(checks(year, i)) for i in range(len(YEAR_STATES))) + " |" for year in YEARS
    )
    path = tmp_path / "checks.md"
    path.write_text(
        f"# NICS statistics by year\n\n| {header} |\n|---|" + "---:|" * len(YEAR_STATES) + f"\n{rows}\n",
        encoding="utf-8",
    )
    storage: dict[str, Any] = {"database_url": pgvector_url, "vector_store": "pgvector"}
    zhiku = Zhiku(Settings(home=tmp_path / "home", **storage))
    try:
        kb = create_knowledge_base(zhiku, "years", chunk_tokens=96, chunk_overlap=0)
        with job_runner(zhiku) as runner:
            outcome = register_file(zhiku, kb, path)
            assert outcome.job_id is not None
            runner.wait_for([outcome.job_id], timeout=300)
        hits = search(zhiku, kb, "which state had the most checks in 2015", SearchOptions(top_k=3))
        best = hits[0]
        assert best.context == f"| {header} |"
        row = next((line for line in best.text.split("\n") if line.startswith("| 2015 | ")), None)
        assert row is not None, f"the 2015 row is not in the best hit: {best.text!r}"
        states = [cell.strip() for cell in best.context.strip("|").split("|")][1:]
        values = [int(cell) for cell in row.strip("|").split("|")[1:]]
        assert max(zip(values, states, strict=True))[1] == "Utah"
    finally:
        zhiku.close()
