"""What the command modules share: the consoles, quiet third-party libraries, opening zhiku, ``--meta`` pairs."""

from __future__ import annotations

import os
from collections.abc import Sequence

from rich.console import Console

from zhiku.config import get_settings
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError
from zhiku.search.filters import check_meta_key

out = Console()
err = Console(stderr=True)


def quiet_libraries() -> None:
    """Keep third-party progress bars and advisories off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    """``--meta KEY=VALUE`` options as a dict, keys checked."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInputError(f"--meta {pair!r}: expected KEY=VALUE", param="meta")
        metadata[check_meta_key(key.strip())] = value.strip()
    return metadata
