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
    pattern = r"^\| all-minilm-l6-v2 \| torch, groups of (\d+), (\w+) \| 6 \| (\d+) \|.*\| ([\d.]+) \|$"
    rows = re.findall(pattern, text, re.M)
    assert [(group, store) for group, store, _, _ in rows] == [
        ("1", "edge"),
        ("1", "pgvector"),
        ("8", "edge"),
        ("8", "pgvector"),
    ]
    assert all(int(chunks) >= 6 and float(ratio) > 0 for _, _, chunks, ratio in rows)
