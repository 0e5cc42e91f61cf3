"""`zhiku kb`, `zhiku ingest`, `zhiku docs` and `zhiku jobs`, run as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ZHIKU = str(Path(sys.executable).parent / "zhiku")


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIKU_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}
    return subprocess.run([ZHIKU, *args], env=env, capture_output=True, text=True, timeout=600, check=False)


def test_kb_ingest_docs_jobs_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "guide.md").write_text("# 安装指南\n\n运行 `pip install zhiku` 即可安装。然后执行 zhiku serve。\n", "utf-8")
    (docs / "sub" / "notes.txt").write_text("Meeting notes: ship the release on Friday.\n", "utf-8")
    (docs / "sub" / "copy.txt").write_text("Meeting notes: ship the release on Friday.\n", "utf-8")
    (docs / "sub" / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (docs / "ignored.log").write_text("log")
    (docs / ".gitignore").write_text("*.log\n")

    created = run(home, "kb", "create", "团队手册", "--chunk-tokens", "64", "--overlap", "8")
    assert created.returncode == 0, created.stderr
    assert "use-multilingual-v3, 512 dims" in created.stdout
    again = run(home, "kb", "create", "团队手册")
    assert again.returncode == 2
    assert "already exists" in again.stderr

    ingested = run(home, "ingest", str(docs), "--kb", "团队手册")
    assert ingested.returncode == 0, ingested.stderr
    assert "guide.md" in ingested.stdout
    assert "ignored.log" not in ingested.stdout
    assert "2 ready" in ingested.stdout
    assert "1 duplicate" in ingested.stdout
    assert "1 failed" in ingested.stdout

    listed = run(home, "kb", "list")
    assert "团队手册" in listed.stdout
    shown = run(home, "kb", "show", "团队手册")
    assert "ready: 2" in shown.stdout

    documents = run(home, "docs", "list", "--kb", "团队手册")
    assert documents.stdout.count("ready") == 2
    assert "broken.pdf" in documents.stdout

    jobs = run(home, "jobs", "list", "--status", "failed")
    assert "broken.pdf" in jobs.stdout
    failed_id = next(line.split()[1] for line in jobs.stdout.splitlines() if "broken.pdf" in line)
    shown_job = run(home, "jobs", "show", failed_id)
    assert shown_job.returncode == 0, shown_job.stderr
    assert "ingest_document" in shown_job.stdout

    found = run(home, "search", "如何安装", "--kb", "团队手册")
    assert found.returncode == 0, found.stderr
    assert "guide.md" in found.stdout
    as_json = run(home, "search", "release Friday", "--kb", "团队手册", "--mode", "lexical", "--json")
    hits = json.loads(as_json.stdout)
    assert hits[0]["filename"] in {"notes.txt", "copy.txt"}
    assert "<mark>release</mark>" in hits[0]["highlighted"]
    assert {"page_start", "char_start", "scores", "text"} <= set(hits[0])
    bad = run(home, "search", "x", "--kb", "团队手册", "--mode", "fuzzy")
    assert bad.returncode == 2
    assert "mode must be dense, lexical or hybrid" in bad.stderr

    unchanged = run(home, "ingest", str(docs / "guide.md"), "--kb", "团队手册")
    assert "unchanged" in unchanged.stdout

    doc_id = next(line.split()[1] for line in documents.stdout.splitlines() if "guide.md" in line)
    deleted = run(home, "docs", "delete", doc_id, "--kb", "团队手册")
    assert deleted.returncode == 0, deleted.stderr
    assert "ready: 1" in run(home, "kb", "show", "团队手册").stdout

    missing = run(home, "ingest", str(docs), "--kb", "nope")
    assert missing.returncode == 2
    assert "no knowledge base named 'nope'" in missing.stderr
    gone = run(home, "kb", "delete", "团队手册", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert "团队手册" not in run(home, "kb", "list").stdout


def test_tags_metadata_and_search_filters_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "leave.md").write_text("# Leave\n\nAnnual leave is twenty days per year.\n", "utf-8")
    (tmp_path / "b" / "假期.md").write_text("# 假期\n\n年假每年二十天 annual leave。\n", "utf-8")
    assert run(home, "kb", "create", "hr").returncode == 0
    first = run(home, "ingest", str(tmp_path / "a"), "--kb", "hr", "--tag", "Policy", "--meta", "lang=en")
    assert first.returncode == 0, first.stderr
    second = run(home, "ingest", str(tmp_path / "b"), "--kb", "hr", "--meta", "lang=zh")
    assert second.returncode == 0, second.stderr

    def filenames(*filters: str) -> set[str]:
        args = [item for f in filters for item in ("--filter", f)]
        found = run(home, "search", "annual leave", "--kb", "hr", "--json", *args)
        assert found.returncode == 0, found.stderr
        return {hit["filename"] for hit in json.loads(found.stdout)}

    assert filenames() == {"leave.md", "假期.md"}
    assert filenames("tag=policy") == {"leave.md"}
    assert filenames("lang=zh") == {"假期.md"}
    assert filenames("date>=2000-01-01", "lang=en") == {"leave.md"}

    document_id = json.loads(run(home, "search", "年假", "--kb", "hr", "--json", "-f", "lang=zh").stdout)[0][
        "document_id"
    ]
    labelled = run(home, "docs", "label", document_id, "--kb", "hr", "--tag", "policy", "--meta", "team=hr")
    assert labelled.returncode == 0, labelled.stderr
    assert "tags [policy]" in labelled.stdout
    assert filenames("tag=policy", "team=hr") == {"假期.md"}
    listed = run(home, "docs", "list", "--kb", "hr")
    assert "team=hr" in listed.stdout

    bad = run(home, "search", "leave", "--kb", "hr", "--filter", "date>=someday")
    assert bad.returncode == 2
    assert "not a date" in bad.stderr
