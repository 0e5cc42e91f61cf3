"""What the command modules share: the consoles, quiet third-party libraries, opening zhiku or finding a running
server, ``--meta`` pairs."""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.console import Console

from zhiku.client import (
    Client,
    ServerUnreachableError,
    looks_like_zhiku,
    process_alive,
    read_server_record,
    server_file,
    wait_until_answering,
)
from zhiku.config import get_settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.search.filters import check_meta_key

PIPE_WIDTH = 200
"""Columns of output that goes to a pipe or a file (Rich assumes 80, which cut model names short)."""


def _console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or :data:`PIPE_WIDTH` when the output is not a terminal (unless
    ``COLUMNS`` says otherwise)."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


out = _console()
err = _console(stderr=True)


def quiet_libraries() -> None:
    """Keep third-party progress bars and advisories off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # "PyTorch was not found" in the default install
    try:
        # imported here, not at the top: transformers takes half a second to import, and only the commands that
        # load a model need it quiet
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def open_zhiku() -> Zhiku:
    """The application context of the current settings (use it as ``with open_zhiku() as zhiku:``)."""
    quiet_libraries()
    return Zhiku(get_settings())


STARTING_SERVER_SECONDS = 180.0
"""How long a command waits for a local server that is starting (it loads its models before it listens)."""


def find_server() -> Client | None:
    """The zhiku server the command should go through, or ``None`` to open the stores itself (embedded).

    ``ZHIKU_URL`` names one (it must answer); otherwise the server that ``zhiku serve`` recorded in
    ``$ZHIKU_HOME/server.json``, when its process is alive (a record left by a killed server is ignored). A local
    server that is still starting is waited for."""
    settings = get_settings()
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    if settings.url:
        client = Client(settings.url, key, how="ZHIKU_URL")
        try:
            client.check()
        except BaseException:
            client.close()
            raise
        return client
    record = read_server_record(settings.home)
    if record is None or not process_alive(record.pid) or not looks_like_zhiku(record.pid):
        return None
    client = Client(record.url, record.key or key, how=str(server_file(settings.home)))
    if client.healthy():
        return client
    err.print(f"waiting for the zhiku server at {record.url} (pid {record.pid}) to finish starting ...")
    if wait_until_answering(client, record.pid, STARTING_SERVER_SECONDS):
        return client
    client.close()
    if not process_alive(record.pid):
        return None
    raise ServerUnreachableError(
        f"the zhiku server (pid {record.pid}) that owns {settings.home} does not answer at {record.url}; "
        "wait until it is ready, or stop it to work without it"
    )


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    """``--meta KEY=VALUE`` options as a dict, keys checked."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInputError(f"--meta {pair!r}: expected KEY=VALUE", param="meta")
        metadata[check_meta_key(key.strip())] = value.strip()
    return metadata
