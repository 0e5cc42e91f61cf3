"""The store process of ``zhiku serve --workers N`` under hostile clients: a wrong key, garbage bytes, methods that
are not the store's, malformed requests. Each is refused alone and the store keeps answering its real clients.
(The store's behaviour through the process is covered by the protocol suite, tests/storage/test_vectors.py.)"""

from __future__ import annotations

import contextlib
import socket as sockets
import time
import uuid
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zhiku.errors import InvalidInputError, NotFoundError, VectorStoreError
from zhiku.storage.vectors import VectorPoint
from zhiku.storage.vectors.edge_process import EdgeStoreClient, key_path, store_process


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    with store_process({"ZHIKU_HOME": str(tmp_path)}) as socket:
        client = EdgeStoreClient(socket)
        client.ensure_collection("c", 4)
        payload = {"document_id": "d", "version": 1}
        client.upsert("c", [VectorPoint(str(uuid.uuid4()), np.eye(4, dtype=np.float32)[0], "lighthouse", payload)])
        client.close()
        yield socket


def _still_answers(socket: Path) -> None:
    client = EdgeStoreClient(socket)
    try:
        assert client.count("c") == 1
        assert [hit.payload["text"] for hit in client.search_text("c", "lighthouse")] == ["lighthouse"]
    finally:
        client.close()


@pytest.mark.parametrize("key", [b"", b"wrong", bytes(32), b"x" * 4096])
def test_a_wrong_key_is_refused(running: Path, key: bytes) -> None:
    with pytest.raises((AuthenticationError, EOFError, ConnectionError)):
        Client(str(running), family="AF_UNIX", authkey=key).send(("count", ("c",), {}))
    _still_answers(running)


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00" * 64, b"GET / HTTP/1.1\r\n\r\n", b"\xff\xff\xff\xff" + b"a" * 100, bytes(range(256)) * 40]
)
def test_garbage_bytes_are_dropped(running: Path, garbage: bytes) -> None:
    with sockets.socket(sockets.AF_UNIX) as raw:
        raw.connect(str(running))
        raw.settimeout(10)
        raw.sendall(garbage)
        raw.shutdown(sockets.SHUT_WR)
        try:
            while raw.recv(4096):
                pass
        except (TimeoutError, ConnectionError):
            pass
    _still_answers(running)


@pytest.mark.parametrize(
    "method", ["close", "_call", "__init__", "__class__", "flush", "memory_report", "", "x" * 10_000]
)
def test_only_the_store_methods_are_answered(running: Path, method: str) -> None:
    client = EdgeStoreClient(running)
    try:
        with pytest.raises(VectorStoreError, match="no method"):
            client._call(method)
    finally:
        client.close()
    _still_answers(running)


def test_a_silent_connection_holds_no_one_else(running: Path) -> None:
    """Connections that never answer the key handshake wait alone: other clients connect and are answered."""
    silent = [sockets.socket(sockets.AF_UNIX) for _ in range(3)]
    try:
        for raw in silent:
            raw.connect(str(running))
        _still_answers(running)
    finally:
        for raw in silent:
            raw.close()
    _still_answers(running)


@pytest.mark.parametrize("request_", [None, "count", ("count",), ("count", "c", {}), ("count", ("c",), []), 42])
def test_malformed_requests_end_only_their_connection(running: Path, request_: object) -> None:
    with Client(str(running), family="AF_UNIX", authkey=key_path(running).read_bytes()) as connection:
        connection.send(request_)
        try:
            status, _ = connection.recv()
            assert status == "error"
        except EOFError:
            pass  # dropped
    _still_answers(running)


def test_errors_come_back_as_the_same_zhiku_errors(running: Path) -> None:
    client = EdgeStoreClient(running)
    try:
        with pytest.raises(NotFoundError):
            client.search_dense("missing", np.ones(4, dtype=np.float32))
        with pytest.raises(InvalidInputError, match="top_k") as raised:
            client.search_text("c", "x", top_k=0)
        assert raised.value.param is None or isinstance(raised.value.param, str)
        with pytest.raises(InvalidInputError, match="dimension"):
            client.search_dense("c", np.ones(7, dtype=np.float32))
    finally:
        client.close()


def test_a_stopped_store_process_is_a_clear_store_error(tmp_path: Path) -> None:
    with store_process({"ZHIKU_HOME": str(tmp_path)}) as socket:
        client = EdgeStoreClient(socket)
        assert not client.has_collection("c")
    with pytest.raises(VectorStoreError, match="vector store process"):
        client.has_collection("c")
    with pytest.raises(VectorStoreError, match="vector store process"):
        EdgeStoreClient(socket)


def _live_store_process(parent: Any, not_these: set[int]) -> Any:
    """The store process running under ``parent`` (waiting for a restarted one to appear)."""
    import psutil

    deadline = time.monotonic() + 30
    while True:
        found = []
        for process in parent.children():
            with contextlib.suppress(psutil.NoSuchProcess):  # one that ended meanwhile
                alive = process.pid not in not_these and process.status() != psutil.STATUS_ZOMBIE
                if alive and "edge_process" in " ".join(process.cmdline()):
                    found.append(process)
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_a_crashed_store_process_is_started_again_with_nothing_lost(tmp_path: Path) -> None:
    """SIGKILL of the store process (a crash, the OOM killer) mid-use: it is started again, its shards replay
    their write-ahead logs, and the clients' next calls (including one whose connection broke) just work."""
    import psutil

    with store_process({"ZHIKU_HOME": str(tmp_path)}) as socket:
        client = EdgeStoreClient(socket)
        client.ensure_collection("c", 4)
        points = [
            VectorPoint(
                str(uuid.uuid4()),
                np.eye(4, dtype=np.float32)[i % 4],
                f"passage {i}",
                {"document_id": f"d{i}", "version": 1},
            )
            for i in range(40)
        ]
        client.upsert("c", points)  # acknowledged: in the write-ahead log
        killed: set[int] = set()
        for _ in range(2):  # twice: the second store process too is started again
            store = _live_store_process(psutil.Process(), killed)
            store.kill()  # not reaped here: zhiku serve's supervisor must see it die
            killed.add(store.pid)
            assert client.count("c") == 40  # on a connection the kill broke: sent again once the store is back
            hits = client.search_dense("c", np.eye(4, dtype=np.float32)[1], top_k=10)
            assert {hit.payload["document_id"] for hit in hits} <= {f"d{i}" for i in range(1, 40, 4)}
            assert len(hits) == 10
        client.upsert("c", points[:5])  # the same ids again: still 40
        assert client.count("c") == 40
        client.close()
