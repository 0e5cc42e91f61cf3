"""`zhiku bench embed` runs end to end on a small sample and appends a well-formed report (no timing asserts)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from zhiku.cli import app


def test_bench_embed_appends_report(evaldata: Path, tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    corpora = [str(evaldata / "retrieval" / "xquad-en"), str(evaldata / "retrieval" / "xquad-zh")]
    args = ["bench", "embed", *corpora, "--model", "use-multilingual-v3", "--passages", "16", "--rounds", "1"]
    for _ in range(2):
        result = CliRunner().invoke(app, [*args, "--output", str(output)])
        assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks")
    assert text.count("## embed throughput") == 2
    assert "- machine: " in text
    assert "| use-multilingual-v3 | 16 |" in text


def test_bench_embed_serving_runs_as_the_readme_gives_it(evaldata: Path, tmp_path: Path) -> None:
    """`--serving` starts `zhiku serve` itself, so it has to get past authentication (it once measured 401s): each
    zhiku row names its backend, beside the bare encode on torch."""
    output = tmp_path / "BENCHMARKS.md"
    corpus = str(evaldata / "retrieval" / "xquad-en")
    args = ["bench", "embed", corpus, "--serving", "--passages", "16", "--rounds", "1", "--backend", "onnx-int8"]
    result = CliRunner().invoke(app, [*args, "--infinity-bin", str(tmp_path / "none"), "--output", str(output)])
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    assert "| sentence-transformers encode, batch 32 | — | " in text
    for clients in (1, 8, 32):
        assert f"| zhiku serve (onnx-int8) | {clients} | " in text
    assert "zhiku (onnx-int8) @32 / bare (torch) = " in text
    assert "auth off" in text
