"""`zhiku bench serve-search`: an embedded server, `--workers 2` on the embedded store and on pgvector, all real,
on a tiny BEIR set; checks the report's shape (no timing asserts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from zhiku.bench.serve_search import server_timing
from zhiku.cli import app


def test_bench_serve_search_runs_both_servers(tmp_path: Path, pgvector_url: str) -> None:
    corpus = tmp_path / "tiny"
    corpus.mkdir()
    passages = ["The lighthouse keeper lit the lamp.", "长江是中国最长的河流。", "Bees make honey from nectar."]
    (corpus / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"p{i}", "text": t}) for i, t in enumerate(passages)), encoding="utf-8"
    )
    (corpus / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"q{i}", "text": t}) for i, t in enumerate(["lamp", "最长的河流"])),
        encoding="utf-8",
    )
    output = tmp_path / "BENCHMARKS.md"
    args = ["bench", "serve-search", str(corpus), "--pgvector-url", pgvector_url, "--clients", "1", "--clients", "2"]
    args += ["--embedded-workers", "2"]
    args += ["--queries", "6", "--rounds", "1", "--output", str(output)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    assert "## search serving" in text
    rows = re.findall(r"^\| zhiku serve (.+?) \| (\d+) \| 6 \| ([\d.]+) \|", text, re.M)
    assert [(setup[:25], clients) for setup, clients, _ in rows] == [
        ("(embedded: SQLite + Qdran", "1"),
        ("--workers 2 (embedded: SQ", "1"),
        ("--workers 2 (PostgreSQL +", "1"),
        ("(embedded: SQLite + Qdran", "2"),
        ("--workers 2 (embedded: SQ", "2"),
        ("--workers 2 (PostgreSQL +", "2"),
    ]
    assert all(float(qps) > 0 for _, _, qps in rows)
    # where the time goes, from each answer's Server-Timing header and the client's clock
    split = text.split("Where the time goes", 1)[1]
    stage_rows = [line.split("|")[1:-1] for line in split.splitlines() if line.startswith("| zhiku serve")]
    assert len(stage_rows) == 6
    for cells in stage_rows:
        stages = dict(zip(("filter", "embed", "dense", "lexical", "fuse", "rows", "score", "search", "outside"),
                          map(float, cells[2:11]), strict=True))  # fmt: skip
        assert stages["embed"] > 0
        assert stages["dense"] > 0
        assert stages["lexical"] > 0
        assert stages["rows"] > 0
        assert stages["outside"] > 0
        assert stages["search"] >= max(stages["embed"], stages["rows"])  # each request's whole holds its parts
        assert cells[12].strip().endswith("%")
        assert 0 < float(cells[13]) < stages["search"] + stages["outside"]  # the HTTP floor: less than a search


def test_server_timing_is_read_as_the_standard_writes_it() -> None:
    assert server_timing('embed;dur=2.5, dense;dur=0.75,search;desc="all";dur=4') == {
        "embed": 2.5,
        "dense": 0.75,
        "search": 4.0,
    }
    assert server_timing("") == {}
    assert server_timing("cache;desc=hit, bad;dur=x, ;dur=3") == {}
