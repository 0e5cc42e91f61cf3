"""Expanding ingest paths: folders, globs, .gitignore, symlink loops, missing paths."""

from __future__ import annotations

import os
from pathlib import Path

from zhiku.ingest.sources import SourceFile, SourceProblem, iter_sources


def tree(root: Path) -> None:
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# A")
    (root / "docs" / "sub" / "b.txt").write_text("b")
    (root / "docs" / "sub" / "skip.log").write_text("log")
    (root / "docs" / "build").mkdir()
    (root / "docs" / "build" / "out.txt").write_text("generated")
    (root / "docs" / ".git").mkdir()
    (root / "docs" / ".git" / "HEAD").write_text("ref")
    (root / "docs" / ".gitignore").write_text("build/\n*.log\n")


def names(items: list[SourceFile | SourceProblem]) -> list[str]:
    return sorted(i.path.name for i in items if isinstance(i, SourceFile))


def test_folder_recursion_respects_gitignore(tmp_path: Path) -> None:
    tree(tmp_path)
    assert names(list(iter_sources([tmp_path / "docs"]))) == ["a.md", "b.txt"]


def test_include_exclude(tmp_path: Path) -> None:
    tree(tmp_path)
    assert names(list(iter_sources([tmp_path / "docs"], include=["*.md"]))) == ["a.md"]
    assert names(list(iter_sources([tmp_path / "docs"], exclude=["sub/*"]))) == ["a.md"]


def test_problems_are_reported_per_path(tmp_path: Path) -> None:
    tree(tmp_path)
    loop = tmp_path / "loop.txt"
    os.symlink(loop, loop)
    (tmp_path / "docs" / "self").symlink_to(tmp_path / "docs" / "self")
    items = list(iter_sources([tmp_path / "missing.pdf", loop, tmp_path / "docs"]))
    problems = [i for i in items if isinstance(i, SourceProblem)]
    assert any("no such file or folder" in p.message for p in problems)
    assert any("loop.txt" in p.message for p in problems)
    assert any(p.path.name == "self" for p in problems)
    assert names(items) == ["a.md", "b.txt"]


def test_same_file_twice_is_listed_once(tmp_path: Path) -> None:
    tree(tmp_path)
    items = list(iter_sources([tmp_path / "docs" / "a.md", tmp_path / "docs"]))
    assert names(items) == ["a.md", "b.txt"]
