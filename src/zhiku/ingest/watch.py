"""Changes in a folder, as ``zhiku watch`` and the server's ``watch_folders`` see them (``watchfiles``: inotify on
Linux, a Rust library).

Only whether something changed matters (the sync that follows compares the whole folder), so each burst of changes
is one event once the folder has been quiet for the debounce time; changes in folders that are never ingested
(``.git``, ``node_modules``, ...) are ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from watchfiles import Change, watch

from zhiku.ingest.sources import ALWAYS_SKIPPED


def _interesting(_: Change, path: str) -> bool:
    return not any(part in ALWAYS_SKIPPED for part in Path(path).parts)


def watch_changes(folder: Path, *, debounce: float, stop: threading.Event) -> Iterator[int]:
    """Yield the number of changed paths each time changes under ``folder`` have paused for ``debounce`` seconds,
    until ``stop`` is set."""
    quiet = max(50, int(debounce * 1000))
    for changes in watch(
        folder,
        watch_filter=_interesting,
        step=quiet,  # a batch is yielded once no change came for this long ...
        debounce=max(quiet * 10, 1600),  # ... or after this long, should changes never pause
        stop_event=stop,
        rust_timeout=1000,  # wakes every second to see ``stop``
        yield_on_timeout=False,
        raise_interrupt=False,
    ):
        yield len(changes)
