"""The ``zhiku`` command line: :data:`app` and its console-script entry point :func:`main`."""

from zhiku.cli.main import app, main

__all__ = ["app", "main"]
