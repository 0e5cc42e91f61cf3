"""Staging folders of uploads (``$ZHIKU_HOME/upload-*``), and the removal of those a crash left behind.

An upload is written to its own folder, checked, registered, and the folder removed. While that happens the
uploading process holds an exclusive ``flock`` on the folder's ``.owner`` file: the kernel drops the lock when
the process ends, however it ends (SIGKILL, OOM, power loss), so a lock that can be taken means the owner is
gone. Several API processes may share a home, so at start each removes only the folders that are

- unlocked (no live process owns them) and unchanged for :data:`GRACE_SECONDS` (an owner takes its lock right
  after creating the folder; younger folders are not even looked at), or
- unchanged (folder and files) for :data:`STALE_SECONDS` when whether their owner lives cannot be told (a home
  on a file system without working locks, or a folder of an older zhiku without an ``.owner`` file).

A folder whose owner holds its lock is never removed, however old: that process removes it when it is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "upload-"
OWNER_FILE = ".owner"
GRACE_SECONDS = 60.0
STALE_SECONDS = 3600.0


@contextlib.contextmanager
def staging_folder(home: Path) -> Iterator[Path]:
    """A new staging folder under ``home``, owned (locked) by this process until the block ends, then removed."""
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=home))
    try:
        fd = os.open(folder / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh file: nobody else holds it (cleaners skip young folders)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield folder
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _last_change(folder: Path) -> float:
    """The newest modification time of the folder and the files in it (a file being written keeps it fresh)."""
    newest = folder.stat().st_mtime
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _owner_alive(folder: Path) -> bool | None:
    """True if a process holds the folder's lock, False if nobody does, None if that cannot be told."""
    try:
        fd = os.open(folder / OWNER_FILE, os.O_RDWR)
    except OSError:  # no owner file (an older zhiku's folder), or unreadable
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also releases the lock if it was taken
    return False


def clean_stale_staging(home: Path, *, now: float | None = None) -> list[Path]:
    """Remove the staging folders under ``home`` that no live process owns (see the module text); return them."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = sorted(p for p in home.glob(f"{PREFIX}*") if p.is_dir() and not p.is_symlink())
    except OSError:
        return removed
    for folder in candidates:
        try:
            age = now - _last_change(folder)
        except FileNotFoundError:
            continue  # its owner finished meanwhile
        if age <= GRACE_SECONDS:
            continue
        alive = _owner_alive(folder)
        if alive is False or (alive is None and age > STALE_SECONDS):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        elif alive is True and age > STALE_SECONDS:
            log.warning("staging folder %s is %.0f s old but its owner is alive: kept", folder, age)
    if removed:
        log.info("removed %d staging folder(s) left by interrupted uploads under %s", len(removed), home)
    return removed
