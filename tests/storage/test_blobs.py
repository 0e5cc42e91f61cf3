"""The content-addressed blob store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from zhiku.errors import FileTooLargeError
from zhiku.storage.blobs import BlobStore


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    source = tmp_path / "a.txt"
    source.write_bytes(b"hello " * 1000)
    first = store.put_file(source, max_bytes=10**6)
    second = store.put_stream([b"hello " * 500, b"hello " * 500], max_bytes=10**6)
    assert first.sha256 == second.sha256 == hashlib.sha256(b"hello " * 1000).hexdigest()
    assert first.path == store.path_for(first.sha256)
    assert first.path.read_bytes() == source.read_bytes()
    assert first.size == 6000
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_too_large_leaves_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(FileTooLargeError, match=r"big\.bin is larger than the limit of 10 bytes"):
        store.put_stream([b"12345", b"67890", b"x"], max_bytes=10, name="big.bin")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_delete(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    blob = store.put_stream([b"x"], max_bytes=10)
    assert store.exists(blob.sha256)
    store.delete(blob.sha256)
    assert not store.exists(blob.sha256)
    store.delete(blob.sha256)  # deleting twice is fine
