"""The web UI: static HTML, CSS and ES modules served by ``zhiku serve`` at ``/`` (no build step)."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
