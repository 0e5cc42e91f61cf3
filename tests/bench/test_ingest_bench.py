"""`zhiku bench ingest` runs end to end on a few documents and appends a well-formed report (no timing asserts)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from zhiku.cli import app


def test_bench_ingest_compares_setups_side_by_side(evaldata: Path, tmp_path: Path, pgvector_url: str) -> None:
    output = tmp_path / "BENCHMARKS.md"
    corpus = str(evaldata / "retrieval" / "xquad-en")
    args = ["bench", "ingest", corpus, "-m", "all-minilm-l6-v2", "--documents", "6", "--rounds", "1",
            "--backend", "torch", "--batch-documents", "1", "--batch-documents", "8"]  # fmt: skip
    args += ["--stores", "edge", "--stores", "pgvector", "--pgvector-url", pgvector_url, "--output", str(output)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    assert "## ingest throughput" in text
    pattern = r"^\| all-minilm-l6-v2 \| 2 passages \| torch, groups of (\d+), (\w+) \| 6 \| (\d+) \|.*\| ([\d.]+) \|$"
    rows = re.findall(pattern, text, re.M)
    assert [(group, store) for group, store, _, _ in rows] == [
        ("1", "edge"),
        ("1", "pgvector"),
        ("8", "edge"),
        ("8", "pgvector"),
    ]
    assert all(int(chunks) >= 6 and float(ratio) > 0 for _, _, chunks, ratio in rows)


def test_bench_ingest_compares_document_sizes_side_by_side(evaldata: Path, tmp_path: Path) -> None:
    """Short notes, 2-passage documents and real PDFs (their pages parsed), each against the bare model on the
    chunks it made."""
    output = tmp_path / "BENCHMARKS.md"
    corpus = str(evaldata / "retrieval" / "xquad-zh")
    args = ["bench", "ingest", corpus, "--documents", "6", "--rounds", "1", "--output", str(output),
            "--shape", "notes", "--shape", "passages", "--shape", "pdfs",
            "--pdfs", str(evaldata / "pdf" / "ctex-kit")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    pattern = r"^\| use-multilingual-v3 \| (.+?) \| default, groups of \d+, edge \| (\d+) \| (\d+) \| (\d+) \|"
    rows = {
        shape: (int(docs), int(chunks), int(tokens)) for shape, docs, chunks, tokens in re.findall(pattern, text, re.M)
    }
    assert set(rows) == {"notes (1-2 passages)", "2 passages", "PDFs"}
    assert rows["notes (1-2 passages)"][0] == rows["2 passages"][0] == 6
    assert rows["notes (1-2 passages)"][1] < rows["2 passages"][1]  # 9 passages against 12
    assert rows["PDFs"][0] == 3  # ctex-faq, xeCJK, zhlineskip: 104 pages
    assert rows["PDFs"][2] > 20 * rows["2 passages"][2]
    assert "PDFs: ctex-kit (OCR off)" in text

    refused = CliRunner().invoke(app, ["bench", "ingest", corpus, "--shape", "pdfs", "--output", str(output)])
    assert refused.exit_code != 0
    assert "--pdfs" in str(refused.exception or refused.output)


def test_bench_ingest_into_a_large_knowledge_base(evaldata: Path, tmp_path: Path) -> None:
    """--existing: the same notes into an empty knowledge base and into one holding 2,000 documents, side by side;
    the new documents' chunks are the same, the report says what the existing ones are."""
    output = tmp_path / "BENCHMARKS.md"
    corpus = str(evaldata / "retrieval" / "xquad-zh")
    args = ["bench", "ingest", corpus, "--documents", "4", "--rounds", "1", "--output", str(output),
            "--shape", "notes", "--existing", "0", "--existing", "2000"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    pattern = r"^\| use-multilingual-v3 \| (notes \(1-2 passages\)(?: into [\d,]+)?) \| [^|]+ \| (\d+) \| (\d+) \|"
    rows = {label: (int(docs), int(chunks)) for label, docs, chunks in re.findall(pattern, text, re.M)}
    assert set(rows) == {"notes (1-2 passages)", "notes (1-2 passages) into 2,000"}
    assert rows["notes (1-2 passages)"] == rows["notes (1-2 passages) into 2,000"]  # the 2,000 have no chunks
    assert rows["notes (1-2 passages)"][0] == 4
    assert "random unit document vectors" in text

    refused = CliRunner().invoke(app, ["bench", "ingest", corpus, "--existing", "-1", "--output", str(output)])
    assert refused.exit_code != 0
