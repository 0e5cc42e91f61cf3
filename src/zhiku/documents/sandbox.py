"""Parsing in child processes with a memory budget, a deadline and a way to stop.

Parsers run third-party code (PDFium, lxml, python-docx, charset detection) on bytes from outside. A one-page PDF
whose content stream inflates to gigabytes, or a 200 MB text file, would exhaust the memory of the process that
parses it, and nothing can interrupt a C library in the middle of a page. So documents are parsed in child
processes:

- each child's address space is capped (``RLIMIT_AS`` = setting ``parse_memory_bytes``): a document that needs
  more fails with :class:`~zhiku.errors.DocumentTooLargeError` (Python's ``MemoryError``, or the child's death
  when a C library aborts on a failed allocation), and the server is untouched;
- a parse that runs past ``parse_timeout_seconds``, or whose caller asks it to stop (its job was cancelled, the
  process is shutting down), is ended by killing the child: :class:`ParseInterruptedError`;
- the character limits of :class:`~zhiku.documents.limits.ParseLimits` are checked in the child, so an oversized
  text never crosses into the caller.

Children are fresh interpreters (``python -c`` with this module: safe beside the caller's threads, no loaded
models inherited, and unlike ``multiprocessing``'s spawn they never re-import the caller's main script), talking
over a socket pair; they are reused for many documents, and a pool lends one child to one caller at a time.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zhiku import errors
from zhiku.documents.limits import ParseLimits
from zhiku.documents.sniff import DetectedType
from zhiku.documents.types import ParsedDocument
from zhiku.errors import CorruptDocumentError, DocumentError, DocumentTooLargeError, ModelLoadError, ZhikuError

if TYPE_CHECKING:  # the OCR module loads PIL: only the children that read scans need it
    from zhiku.documents.ocr import OcrResult

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""How often a waiting caller checks its stop condition, the deadline and the child's life."""
CHECK_TIMEOUT_SECONDS = 60.0
"""Longest an upload check may take (it reads no page content, so real files take milliseconds)."""
PARSE_SETTINGS = ("ZHIKU_PARSE_MEMORY_BYTES", "ZHIKU_PARSE_TIMEOUT_SECONDS")
OCR_SETTINGS = ("ZHIKU_OCR_MEMORY_BYTES", "ZHIKU_OCR_PAGE_TIMEOUT_SECONDS")
"""The settings that raise the memory and time budgets, named in the errors of a sandbox that ran out of them."""


class ParseInterruptedError(Exception):
    """The caller asked a parse to stop (its job was cancelled, or the process is shutting down)."""


class ParserFailedError(ZhikuError):
    """The parsing process failed for a reason that is not the document's (a missing package, a bug): not
    transient, so the job fails with this reason instead of being retried."""

    code = "parser_failed"


# -- the child ------------------------------------------------------------------------------------------------
def child_main(fd: int) -> None:
    """Serve parse requests on the socket ``fd`` until it closes; the child process runs this."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends this child
    conn = Connection(fd)
    limits: ParseLimits = conn.recv()
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    while True:
        try:
            operation, path, filename, argument = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_run_in_child(operation, Path(path), filename, argument, limits))


def _run_in_child(
    operation: str, path: Path, filename: str, argument: Any, limits: ParseLimits
) -> tuple[str, Any, str]:
    """("ok", result, "") or ("error", error class name, message): exceptions cross as names and messages,
    since not every exception class can be pickled. ``operation`` is "parse", "check" or "ocr" (``argument``:
    the page number and the resolution)."""
    try:
        from zhiku.documents import parsers  # here, so that an import failure is this request's answer

        if operation == "check":
            return "ok", parsers.check_file(path, filename=filename, limits=limits), ""
        if operation == "ocr":
            from zhiku.documents.parsers import pdf

            page, dpi = argument
            return "ok", pdf.ocr_page_image(path, filename, page, dpi), ""
        return "ok", parsers.parse_file(path, filename=filename, limits=limits), ""
    except DocumentError as exc:
        return "error", type(exc).__name__, exc.message
    except ModelLoadError as exc:
        return "model", type(exc).__name__, exc.message
    except MemoryError:
        return "memory", None, ""
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the job with it
        return "failure", type(exc).__name__, str(exc)


# -- the parent ------------------------------------------------------------------------------------------------
class ParseSandbox:
    """One child process that parses one document at a time under ``limits``."""

    def __init__(self, limits: ParseLimits, settings: tuple[str, str] = PARSE_SETTINGS) -> None:
        self.limits = limits
        self.memory_setting, self.timeout_setting = settings
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def check(self, path: Path, filename: str) -> DetectedType:
        """:func:`zhiku.documents.parsers.check_file` in the child: the type and structure of an upload."""
        detected: DetectedType = self._run(
            "check", path, filename, None, min(CHECK_TIMEOUT_SECONDS, self.limits.timeout_seconds)
        )
        return detected

    def parse(self, path: Path, filename: str, should_stop: Callable[[], bool] | None = None) -> ParsedDocument:
        """Parse ``path`` in the child; ``should_stop`` is called while waiting and ends the parse when true.

        Raises:
            DocumentError: the document's own failure (its subclass and message, as the parser raised them);
                :class:`~zhiku.errors.DocumentTooLargeError` when it needs more memory or time than allowed.
            ParseInterruptedError: ``should_stop`` returned true.
            ParserFailedError: the parser failed for a reason that is not the document's.
        """
        document: ParsedDocument = self._run("parse", path, filename, should_stop, self.limits.timeout_seconds)
        return document

    def ocr(
        self, path: Path, filename: str, page: int, dpi: int, should_stop: Callable[[], bool] | None = None
    ) -> OcrResult:
        """Render page ``page`` of the PDF at ``path`` at ``dpi`` and read it with OCR, in the child.

        Raises:
            DocumentError: the page cannot be rendered, or needs more memory or time than allowed
                (:class:`~zhiku.errors.DocumentTooLargeError`).
            ModelLoadError: the OCR engine is not installed or cannot load its models.
            ParseInterruptedError: ``should_stop`` returned true.
        """
        result: OcrResult = self._run("ocr", path, filename, should_stop, self.limits.timeout_seconds, (page, dpi))
        return result

    def _run(
        self,
        operation: str,
        path: Path,
        filename: str,
        should_stop: Callable[[], bool] | None,
        timeout: float,
        argument: Any = None,
    ) -> Any:
        conn, process = self._started()
        conn.send((operation, str(path), filename, argument))
        deadline = time.monotonic() + timeout
        while not conn.poll(POLL_SECONDS):
            if process.poll() is not None:
                code = process.returncode
                self.close()
                raise self._died(filename, code)
            if should_stop is not None and self._stop_asked(should_stop):
                raise ParseInterruptedError(filename)
            if time.monotonic() > deadline:
                self.close()
                raise DocumentTooLargeError(
                    f"document too large to index: reading {filename} took more than {timeout:g} s; "
                    f"raise {self.timeout_setting}"
                )
        try:
            status, value, message = conn.recv()
        except (EOFError, OSError):  # the child died while answering (or instead of answering)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
            code = process.returncode
            self.close()
            raise self._died(filename, code) from None
        if status == "ok":
            return value
        if status == "error":
            error_class = getattr(errors, str(value), None)
            if isinstance(error_class, type) and issubclass(error_class, DocumentError):
                raise error_class(message)
            raise CorruptDocumentError(message)
        if status == "model":
            raise ModelLoadError(message)
        self.close()  # after a MemoryError or a failure, start afresh
        if status == "memory":
            raise self._out_of_memory(filename, "MemoryError")
        if value in ("ImportError", "ModuleNotFoundError"):
            raise ParserFailedError(
                f"cannot parse {filename}: a package zhiku needs is missing or broken ({message}); reinstall zhiku "
                "(`pip install --force-reinstall zhiku`), then retry the job"
            )
        raise ParserFailedError(f"parsing {filename} failed: {value}: {message}")

    def _stop_asked(self, should_stop: Callable[[], bool]) -> bool:
        """``should_stop()``; the child is ended when it says yes or raises (the caller stops either way)."""
        try:
            stop = should_stop()
        except BaseException:
            self.close()
            raise
        if stop:
            self.close()
        return stop

    def _died(self, filename: str, code: int | None) -> ZhikuError:
        """Why the child died: a failed allocation aborts it (SIGABRT), the kernel's OOM killer kills it (SIGKILL);
        another signal means the document crashed a parser; an exit code, that the child itself failed."""
        if code in (-signal.SIGABRT, -signal.SIGKILL):
            return self._out_of_memory(filename, f"the parsing process ended by signal {-code}")
        if code is not None and code < 0:
            return CorruptDocumentError(f"{filename} crashed the parser (signal {-code}): the file is probably damaged")
        return ParserFailedError(f"the process parsing {filename} ended unexpectedly (exit code {code})")

    def _out_of_memory(self, filename: str, detail: str) -> DocumentTooLargeError:
        return DocumentTooLargeError(
            f"document too large to index: parsing {filename} needed more than the memory budget of "
            f"{self.limits.memory_bytes // 2**20:,} MiB ({detail}); raise {self.memory_setting}"
        )

    def start(self) -> None:
        """Start the child process unless it runs."""
        self._started()

    def _started(self) -> tuple[Connection, subprocess.Popen[bytes]]:
        if self._process is None or self._conn is None or self._process.poll() is not None:
            self.close()
            ours, theirs = socket.socketpair()
            with ours, theirs:
                code = f"from zhiku.documents.sandbox import child_main; child_main({theirs.fileno()})"
                process = subprocess.Popen(
                    [sys.executable, "-c", code], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL
                )
                conn = Connection(ours.detach())
            conn.send(self.limits)
            self._process, self._conn = process, conn
        return self._conn, self._process

    def close(self) -> None:
        """End the child process (at once: it may be in the middle of a document)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


class SandboxPool:
    """At most ``size`` parsing children, each lent to one caller at a time; started on first use."""

    def __init__(self, limits: ParseLimits, size: int, settings: tuple[str, str] = PARSE_SETTINGS) -> None:
        self.limits = limits
        self.size = size
        self.settings = settings
        self._idle: list[ParseSandbox] = []
        self._lent = 0
        self._closed = False
        self._available = threading.Condition()

    def start(self) -> None:
        """Start every child now (in the background: the caller goes on), so the first documents do not wait for
        an interpreter to start. Each parser module is imported by the child when a document of its kind comes."""
        with self._available:
            while not self._closed and len(self._idle) + self._lent < self.size:
                box = ParseSandbox(self.limits, self.settings)
                box.start()
                self._idle.append(box)

    @contextlib.contextmanager
    def sandbox(self) -> Iterator[ParseSandbox]:
        """Borrow a sandbox (waits while all are lent)."""
        with self._available:
            while not self._idle and self._lent >= self.size:
                self._available.wait()
            box = self._idle.pop() if self._idle else ParseSandbox(self.limits, self.settings)
            self._lent += 1
        try:
            yield box
        finally:
            with self._available:
                self._lent -= 1
                if self._closed:
                    box.close()
                else:
                    self._idle.append(box)
                self._available.notify()

    def parse(self, path: Path, filename: str, should_stop: Callable[[], bool] | None = None) -> ParsedDocument:
        """:meth:`ParseSandbox.parse` on a borrowed sandbox."""
        with self.sandbox() as box:
            return box.parse(path, filename, should_stop)

    def ocr(
        self, path: Path, filename: str, page: int, dpi: int, should_stop: Callable[[], bool] | None = None
    ) -> OcrResult:
        """:meth:`ParseSandbox.ocr` on a borrowed sandbox."""
        with self.sandbox() as box:
            return box.ocr(path, filename, page, dpi, should_stop)

    def check(self, path: Path, filename: str) -> DetectedType:
        """:meth:`ParseSandbox.check` on a borrowed sandbox."""
        with self.sandbox() as box:
            return box.check(path, filename)

    def end_idle(self) -> None:
        """End the children nobody is using now (the pool starts new ones when asked): frees their memory."""
        with self._available:
            idle, self._idle = self._idle, []
        for box in idle:
            box.close()

    def close(self) -> None:
        """End every idle child; lent ones end when they are returned."""
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
        for box in idle:
            box.close()
