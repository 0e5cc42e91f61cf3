"""Content-addressed file store: every ingested file is kept once, named by its SHA-256, under ZHIKU_HOME."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from zhiku.errors import FileTooLargeError

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Blob:
    """A stored file: its SHA-256 (hex), size and location."""

    sha256: str
    size: int
    path: Path


class BlobStore:
    """Files under ``root/ab/cd/<sha256>``, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this hash lives (whether or not it exists)."""
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        return self.path_for(sha256).is_file()

    def put_file(self, source: Path, *, max_bytes: int) -> Blob:
        """Copy a local file in, refusing files over ``max_bytes``; the source is read once."""
        with source.open("rb") as handle:
            return self.put_stream(_read_chunks(handle), max_bytes=max_bytes, name=source.name)

    def put_stream(self, chunks: Iterable[bytes], *, max_bytes: int, name: str = "upload") -> Blob:
        """Store a stream of bytes without holding it in memory; stops as soon as it exceeds ``max_bytes``."""
        digest = hashlib.sha256()
        size = 0
        fd, temp_name = tempfile.mkstemp(dir=self.tmp)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLargeError(
                            f"{name} is larger than the limit of {max_bytes:,} bytes (setting max_file_bytes)"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.path_for(sha)
            if target.is_file():
                temp.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                temp.replace(target)
            return Blob(sha, size, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def delete(self, sha256: str) -> None:
        """Remove a blob (callers check that no document still refers to it)."""
        self.path_for(sha256).unlink(missing_ok=True)


def _read_chunks(handle: BinaryIO) -> Iterable[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk
