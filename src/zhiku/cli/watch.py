"""`zhiku watch DIR --kb NAME`: keep a folder in sync with a knowledge base while the command runs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from zhiku.cli.common import err, find_server, open_zhiku, out
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.sources import FolderWatcher, SyncReport
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Source


def watch(
    folder: Annotated[Path, typer.Argument(help="The folder to keep in sync (.gitignore respected).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
) -> None:
    """Sync a folder into a knowledge base now and again whenever files in it change, until interrupted (Ctrl-C).

    The folder is remembered as a source (`zhiku sources list`; `zhiku sync` syncs it too). Changed files become
    new versions, deleted files' documents are removed, untouched files are not read again. For a folder the
    server should watch, use the `watch_folders` setting of `zhiku serve` instead.
    """
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: not a folder", param="folder")
    server = find_server()
    if server is not None:
        server.close()
        raise InvalidInputError(
            "a zhiku server owns this data folder: let it watch the folder with its watch_folders setting "
            '(e.g. ZHIKU_WATCH_FOLDERS=\'{"/path": "kb"}\'), or stop it to watch from here'
        )
    stopped = threading.Event()

    def on_sync(source: Source, report: SyncReport) -> None:
        out.print(f"synced {escape(source.location)}: {report.summary()}", soft_wrap=True)
        for path, reason in report.skipped[:10]:
            out.print(f"  skipped {escape(path)}: {escape(reason)}", soft_wrap=True)

    def on_error(where: str, exc: Exception) -> None:
        err.print(f"[red]{escape(where)}: {escape(getattr(exc, 'message', None) or str(exc))}[/]", soft_wrap=True)

    def interrupted(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)  # a wrong name fails now, not in the watching thread
        runner = job_runner(zhiku)
        if zhiku.settings.job_backend == "embedded":
            runner.start()
        watcher = FolderWatcher(zhiku, {str(folder.resolve()): kb.id}, on_sync=on_sync, on_error=on_error)
        previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            watcher.start()
            out.print(f"watching {escape(str(folder.resolve()))} for {escape(kb.name)} (Ctrl-C to stop)")
            while not stopped.wait(0.5):  # a short wait: the signal handler runs between waits
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            watcher.stop()
            runner.stop()
