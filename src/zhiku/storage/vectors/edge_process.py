"""The embedded vector store shared by several server processes: one process owns the Qdrant Edge shards, the
others ask it over a Unix socket.

Only one process may open a Qdrant Edge shard (its write-ahead log is locked), and a shard query holds the GIL
for its whole run, so one ``zhiku serve`` process cannot use a second core for searches. ``zhiku serve --workers
N`` on the embedded store therefore starts a *store process* (:func:`main`) that opens the shards, and gives every
server process an :class:`EdgeStoreClient` (setting ``edge_store_socket``), which implements
:class:`~zhiku.storage.vectors.base.VectorStore` by sending each call to the store process. The server processes
then parse HTTP, embed queries and read SQLite in parallel, while the shard queries run in the store process.

The socket and its key live in a private directory (``mkdtemp``: mode 0700) that ``zhiku serve`` creates;
connections authenticate with the key (:mod:`multiprocessing.connection`'s HMAC challenge) before any message is
read, and the store process answers only the :class:`VectorStore` methods. Messages are pickled: both ends are
processes of the same ``zhiku serve``, started by the same user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import Client, Connection, Listener, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

import numpy as np

from zhiku import errors
from zhiku.errors import VectorStoreError
from zhiku.storage.vectors.base import SearchFilter, VectorHit, VectorPoint, VectorStore

log = logging.getLogger(__name__)

METHODS = frozenset(
    {
        "ensure_collection",
        "has_collection",
        "delete_collection",
        "upsert",
        "delete",
        "search_dense",
        "search_text",
        "search_hybrid",
        "count",
        "optimize",
        "dimension",
        "collections",
    }
)
"""What the store process answers: the :class:`VectorStore` protocol without ``close`` (the store is closed by its
own process when it stops, never by one of its clients), and the embedded store's ``dimension`` and
``collections``."""


RECONNECT_SECONDS = 15.0
"""How long a call waits for a store process that stopped to be started again (it takes 1-2 s)."""


def key_path(socket: Path) -> Path:
    """The key file beside ``socket``: random bytes that clients must prove they hold."""
    return socket.with_name(socket.name + ".key")


def _error_message(exc: BaseException) -> tuple[str, str, str | None]:
    """An exception as (class name, message, param), for the client to raise the same zhiku error."""
    return type(exc).__name__, str(exc), getattr(exc, "param", None)


def _rebuilt_error(name: str, message: str, param: str | None) -> Exception:
    """The zhiku error the store process raised (a store error when it was not one that can be rebuilt)."""
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, errors.ZhikuError):
        try:
            return kind(message, param=param)
        except TypeError:  # an error with other arguments (none is raised by a store today)
            pass
    return VectorStoreError(f"the vector store process failed: {name}: {message}")


class EdgeStoreServer:
    """Answers :data:`METHODS` calls on ``store`` from clients of ``socket`` (one thread per connection)."""

    def __init__(self, store: VectorStore, socket: Path, key: bytes) -> None:
        self.store = store
        self.key = key
        # no authkey here: the listener would run the key handshake in accept(), where a client that connects and
        # sends nothing would hold every later one; each connection's own thread runs it instead
        self.listener = Listener(str(socket), family="AF_UNIX")
        self._stopping = threading.Event()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`; a client that fails the handshake is dropped, nothing else."""
        while not self._stopping.is_set():
            try:
                connection = self.listener.accept()
            except Exception as exc:  # noqa: BLE001 - only that client
                if self._stopping.is_set():  # the listener was closed by stop()
                    break
                log.warning("vector store process: refused a connection: %s", exc)
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True, name="edge-store-client").start()

    def stop(self) -> None:
        """Stop accepting connections (answers in flight finish; the caller then closes the store)."""
        self._stopping.set()
        self.listener.close()

    def _answer(self, connection: Connection) -> None:
        with connection:
            try:  # what Listener(authkey=...) does in accept(): prove the key is shared, both ways
                deliver_challenge(connection, self.key)
                answer_challenge(connection, self.key)
            except Exception as exc:  # noqa: BLE001 - a wrong key, garbage, a closed connection: only this client
                log.warning("vector store process: refused a connection: %s", exc)
                return
            while True:
                try:
                    method, args, kwargs = connection.recv()
                except (EOFError, OSError):
                    return  # the client closed its connection
                except Exception as exc:  # noqa: BLE001 - a message that is not (method, args, kwargs)
                    log.warning("vector store process: unreadable request: %s", exc)
                    return
                try:
                    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
                        raise VectorStoreError("a request is (method, args tuple, kwargs dict)")
                    if method not in METHODS:
                        raise VectorStoreError(f"the vector store process has no method {method!r}")
                    result = getattr(self.store, method)(*args, **kwargs)
                    reply: tuple[str, Any] = ("ok", list(result) if isinstance(result, Iterator) else result)
                except Exception as exc:  # noqa: BLE001 - raised again in the client that asked
                    reply = ("error", _error_message(exc))
                try:
                    connection.send(reply)
                except (OSError, ValueError):
                    return


class EdgeStoreClient:
    """A :class:`VectorStore` whose calls run in the store process at ``socket`` (thread-safe: each thread
    borrows a connection of its own from a pool)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        try:
            self._key = key_path(socket).read_bytes()
        except OSError as exc:
            raise VectorStoreError(
                f"cannot reach the vector store process at {socket}: its key is unreadable ({exc}); it is started "
                "by zhiku serve --workers N and ends with it"
            ) from exc
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._closed = False

    def _connect(self, wait: float = 0.0) -> Connection:
        """A new connection; with ``wait``, retried for that many seconds (the store process being restarted)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return Client(str(self.socket), family="AF_UNIX", authkey=self._key)
            except (OSError, EOFError) as exc:
                if time.monotonic() >= deadline:
                    raise VectorStoreError(
                        f"cannot reach the vector store process at {self.socket} ({exc}): it is started by zhiku "
                        "serve --workers N, which starts it again if it stops; restart the server if it does not"
                    ) from exc
                time.sleep(0.1)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` in the store process. A connection found broken (the store process stopped and was
        started again by zhiku serve) is dropped with every idle one, and the call is sent once more on a new
        connection: every store call may be repeated (upserts and deletes are by id)."""
        for attempt in (1, 2):
            try:
                if attempt == 2:  # a new connection: an idle one may be as broken as the last
                    raise queue.Empty
                connection = self._idle.get_nowait()
            except queue.Empty:
                try:
                    connection = self._connect(wait=0.0 if attempt == 1 else RECONNECT_SECONDS)
                except VectorStoreError:
                    if attempt == 2:
                        raise
                    continue
            try:
                connection.send((method, args, kwargs))
                status, value = connection.recv()
            except (OSError, EOFError) as exc:
                connection.close()
                self._drop_idle()
                if attempt == 2:
                    raise VectorStoreError(
                        f"the vector store process at {self.socket} stopped answering ({exc or 'connection closed'})"
                    ) from exc
                continue
            except BaseException:
                connection.close()  # a half-read answer must not be read by the next call
                raise
            if self._closed:
                connection.close()
            else:
                self._idle.put(connection)
            if status == "error":
                raise _rebuilt_error(*value)
            return value
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_idle(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def ensure_collection(self, name: str, dimension: int, *, index_dimension: int | None = None) -> None:
        """See :meth:`VectorStore.ensure_collection`."""
        self._call("ensure_collection", name, dimension, index_dimension=index_dimension)

    def has_collection(self, name: str) -> bool:
        """See :meth:`VectorStore.has_collection`."""
        return bool(self._call("has_collection", name))

    def delete_collection(self, name: str) -> None:
        """See :meth:`VectorStore.delete_collection`."""
        self._call("delete_collection", name)

    def upsert(self, name: str, points: Sequence[VectorPoint]) -> None:
        """See :meth:`VectorStore.upsert`."""
        self._call("upsert", name, list(points))

    def delete(self, name: str, *, document_id: str, version: int | None = None) -> int:
        """See :meth:`VectorStore.delete`."""
        return int(self._call("delete", name, document_id=document_id, version=version))

    def search_dense(
        self,
        name: str,
        vector: np.ndarray,
        *,
        top_k: int = 10,
        filter: SearchFilter | None = None,
        with_payload: bool = True,
    ) -> list[VectorHit]:
        """See :meth:`VectorStore.search_dense`."""
        hits: list[VectorHit] = self._call(
            "search_dense", name, vector, top_k=top_k, filter=filter, with_payload=with_payload
        )
        return hits

    def search_text(
        self, name: str, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """See :meth:`VectorStore.search_text`."""
        hits: list[VectorHit] = self._call("search_text", name, query, top_k=top_k, filter=filter)
        return hits

    def search_hybrid(
        self, name: str, vector: np.ndarray, query: str, *, top_k: int = 10, filter: SearchFilter | None = None
    ) -> list[VectorHit]:
        """See :meth:`VectorStore.search_hybrid`."""
        hits: list[VectorHit] = self._call("search_hybrid", name, vector, query, top_k=top_k, filter=filter)
        return hits

    def count(self, name: str, filter: SearchFilter | None = None) -> int:
        """See :meth:`VectorStore.count`."""
        return int(self._call("count", name, filter))

    def optimize(self, name: str) -> None:
        """See :meth:`VectorStore.optimize`."""
        self._call("optimize", name)

    def dimension(self, name: str) -> int:
        """The collection's vector dimension."""
        return int(self._call("dimension", name))

    def collections(self) -> Iterator[str]:
        """The names of the collections, sorted."""
        names: list[str] = self._call("collections")
        return iter(names)

    def close(self) -> None:
        """Close this process's connections (the store itself stays open in its own process)."""
        self._closed = True
        self._drop_idle()


@contextlib.contextmanager
def store_process(environment: Mapping[str, str] | None = None, timeout: float = 60.0) -> Iterator[Path]:
    """Run a store process for the duration of the block and yield its socket (for ``edge_store_socket``): a
    private directory holds the socket and its key; the process gets this process's environment (settings), with
    ``environment`` on top. A store process that dies (a crash, the OOM killer: a non-zero exit status) is started
    again at once; its shards replay their write-ahead logs, and the clients send their interrupted calls again."""
    import secrets
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="zhiku-store-"))  # mode 0700; short enough for a socket's path
    socket = folder / "edge.sock"
    try:
        key_path(socket).touch(mode=0o600)
        key_path(socket).write_bytes(secrets.token_bytes(32))
        command = [sys.executable, "-m", "zhiku.storage.vectors.edge_process", str(socket)]
        supervisor = _Supervisor(command, {**os.environ, **(environment or {})}, socket, timeout)
        supervisor.start()
        try:
            yield socket
        finally:
            supervisor.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Supervisor:
    """Keeps one store process running until :meth:`stop`."""

    def __init__(self, command: list[str], environment: dict[str, str], socket: Path, timeout: float) -> None:
        self.command, self.environment, self.socket, self.timeout = command, environment, socket, timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        """Start the store process and wait until it answers; then watch it."""
        self._launch()
        threading.Thread(target=self._watch, daemon=True, name="edge-store-supervisor").start()

    def _launch(self) -> None:
        with self._lock:
            if self._stopping:
                return
            # a session of its own: a terminal's Ctrl-C or a SIGTERM to the server's process group stops the server
            # processes first; the store process is stopped after them, by stop()
            self.process = subprocess.Popen(self.command, env=self.environment, start_new_session=True)
            process = self.process
        _wait_ready(process, self.socket, self.timeout, time.monotonic() + self.timeout)

    def _watch(self) -> None:
        while True:
            process = self.process
            assert process is not None
            status = process.wait()
            with self._lock:
                if self._stopping:
                    return
            if status == 0:  # stopped on request (SIGTERM, SIGINT): not a crash to recover from
                log.warning("the vector store process was stopped; store calls fail until zhiku serve restarts")
                return
            self.restarts += 1
            log.error("the vector store process stopped (exit status %s); starting it again", status)
            try:
                self._launch()
            except VectorStoreError as exc:
                log.error("%s; trying again in 1 s", exc)
                time.sleep(1.0)

    def stop(self) -> None:
        """Stop the store process (SIGTERM: it flushes its shards) and do not start it again."""
        with self._lock:
            self._stopping = True
            process = self.process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], socket: Path, timeout: float, deadline: float) -> None:
    """Return once the store process answers at ``socket``; raise if it ended or did not answer in time."""
    key = key_path(socket).read_bytes()
    while True:
        if process.poll() is not None:
            raise VectorStoreError(f"the vector store process ended at start (exit status {process.returncode})")
        try:
            Client(str(socket), family="AF_UNIX", authkey=key).close()
            return
        except (OSError, EOFError):
            if time.monotonic() > deadline:
                raise VectorStoreError(f"the vector store process did not answer within {timeout:g} s") from None
            time.sleep(0.05)


def _exit_with_parent(parent: int) -> None:
    """Stop when the process that started this one is gone (a ``zhiku serve`` killed without its cleanup): by
    the same SIGTERM as a normal stop, whose handler runs in the main thread, where ``accept`` waits."""
    while os.getppid() == parent:
        threading.Event().wait(1.0)
    log.warning("vector store process: zhiku serve (pid %d) is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the store process: ``python -m zhiku.storage.vectors.edge_process SOCKET`` (the key is read from the
    file beside the socket; the store's settings from the environment, as for any zhiku process). Stops on
    SIGTERM, SIGINT or when its parent is gone, flushing the shards (and then, if its parent is gone, removing the
    socket's folder)."""
    from zhiku.config import get_settings
    from zhiku.storage.vectors import create_vector_store

    socket = Path((argv if argv is not None else sys.argv[1:])[0])
    settings = get_settings().model_copy(update={"edge_store_socket": None})  # this process owns the shards
    logging.basicConfig(level=settings.log_level, format="%(levelname)s: %(message)s")
    store = create_vector_store(settings)
    socket.unlink(missing_ok=True)  # left by a store process that was killed (its supervisor starts one at a time)
    server = EdgeStoreServer(store, socket, key_path(socket).read_bytes())
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: server.stop())
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        store.close()
        if os.getppid() != parent:  # zhiku serve was killed: nobody else removes the socket's folder
            key_path(socket).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                socket.parent.rmdir()  # only if empty


if __name__ == "__main__":
    main()
