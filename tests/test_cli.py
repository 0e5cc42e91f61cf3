"""The `zhiku` console script, run as a user runs it (a real subprocess, offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ZHIKU = shutil.which("zhiku", path=str(Path(sys.executable).parent)) or "zhiku"


def run(*args: str, stdin: str | None = None, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIKU_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [ZHIKU, *args], input=stdin, capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_embed_jsonl_to_stdout(tmp_path: Path) -> None:
    result = run("embed", "你好，世界", "hello world", home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["index"] for row in rows] == [0, 1]
    vectors = np.array([row["embedding"] for row in rows])
    assert vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_file_stdin_npy_and_query(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(row) for row in [{"text": "第一行"}, "second line", {"text": "third"}])
    out = tmp_path / "v.npy"
    result = run("embed", "--file", "-", "--format", "npy", "--output", str(out), "--query", stdin=lines, home=tmp_path)
    assert result.returncode == 0, result.stderr
    vectors = np.load(out)
    assert vectors.shape == (3, 512)
    assert "wrote 3 x 512" in result.stderr
    source = tmp_path / "in.jsonl"
    source.write_text(lines + "\n", encoding="utf-8")
    again = run("embed", "-f", str(source), "-o", str(tmp_path / "v.jsonl"), home=tmp_path)
    assert again.returncode == 0, again.stderr
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert np.allclose(np.array([r["embedding"] for r in rows]), vectors, atol=1e-6)


def test_embed_many_texts_with_progress(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(f"sentence {i}") for i in range(300))
    result = run("embed", "--file", "-", stdin=lines, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 300


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    cases = {
        ("embed", "x", "--dim", "31"): "not a Matryoshka model",
        ("embed", "x", "--model", "nope"): "unknown model 'nope'",
        ("embed", ""): "input[0] is empty or only whitespace",
        ("embed",): "nothing to embed",
        ("embed", "x", "--format", "npy"): "--format npy needs --output FILE",
    }
    for args, message in cases.items():
        result = run(*args, home=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'"ok"\n{"text": 5}\n')
    result = run("embed", "-f", str(bad), home=tmp_path)
    assert result.returncode == 2
    assert "bad.jsonl:2: expected a JSON string or an object with a 'text' string" in result.stderr
    bad.write_bytes(b'"ok"\n"\xff\xfe"\n')
    result = run("embed", "-f", str(bad), home=tmp_path)
    assert result.returncode == 2
    assert "not valid UTF-8" in result.stderr


def test_demo_models_and_config(tmp_path: Path) -> None:
    demo = run("demo", home=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "use-multilingual-v3" in demo.stdout
    assert "L2 norm 1.0000" in demo.stdout
    models = run("models", home=tmp_path)
    assert "qwen3-embedding-8b" in models.stdout
    config = run("config", home=tmp_path)
    assert "ZHIKU_EMBEDDING_MODEL" in config.stdout
