"""Expand the paths given to ``zhiku ingest`` into files: folders recursively, ``.gitignore`` respected.

Directory symlinks are not followed (no loops); a file symlink is followed if it resolves. Problems with a
single path (missing, unreadable, a symlink loop) are reported per path instead of stopping the batch.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

ALWAYS_SKIPPED = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest."""

    path: Path


@dataclass(frozen=True)
class SourceProblem:
    """A path that cannot be ingested, with the reason."""

    path: Path
    message: str


def _matches(relative: str, patterns: Sequence[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not _matches(relative, include):
        return False
    return not (exclude and _matches(relative, exclude))


def _gitignore(folder: Path) -> pathspec.GitIgnoreSpec | None:
    file = folder / ".gitignore"
    try:
        return pathspec.GitIgnoreSpec.from_lines(file.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return None


def iter_sources(
    paths: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Iterator[SourceFile | SourceProblem]:
    """Yield every file under ``paths`` (sorted, deduplicated), or a problem for paths that cannot be read."""
    seen: set[Path] = set()
    for root in paths:
        try:
            if root.is_symlink():
                root.resolve(strict=True)
            is_dir = root.is_dir()
            exists = root.exists()
        except (OSError, RuntimeError) as exc:
            yield SourceProblem(root, f"{root}: {getattr(exc, 'strerror', None) or exc}")
            continue
        if not exists:
            yield SourceProblem(root, f"{root}: no such file or folder")
            continue
        if not is_dir:
            key = root.resolve()
            if key not in seen:
                seen.add(key)
                yield SourceFile(root)
            continue
        yield from _walk(root, include, exclude, seen)


def _walk(
    root: Path, include: Sequence[str], exclude: Sequence[str], seen: set[Path]
) -> Iterator[SourceFile | SourceProblem]:
    specs: list[tuple[Path, pathspec.GitIgnoreSpec]] = []
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=errors.append):
        here = Path(folder)
        spec = _gitignore(here)
        if spec is not None:
            specs.append((here, spec))
        active = [(base, s) for base, s in specs if here == base or base in here.parents]

        def ignored(path: Path, is_dir: bool, active: list[tuple[Path, pathspec.GitIgnoreSpec]] = active) -> bool:
            for base, s in active:
                relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
                if s.match_file(relative):
                    return True
            return False

        dirs[:] = sorted(d for d in dirs if d not in ALWAYS_SKIPPED and not ignored(here / d, True))
        for name in sorted(files):
            path = here / name
            if name == ".gitignore" or ignored(path, False):
                continue
            relative = path.relative_to(root).as_posix()
            if not _selected(relative, include, exclude):
                continue
            try:
                if path.is_symlink():
                    path.resolve(strict=True)
                key = path.resolve()
            except (OSError, RuntimeError) as exc:
                yield SourceProblem(path, f"{path}: {getattr(exc, 'strerror', None) or exc}")
                continue
            if key not in seen:
                seen.add(key)
                yield SourceFile(path)
    for error in errors:
        yield SourceProblem(Path(error.filename or root), f"{error.filename}: {error.strerror}")
