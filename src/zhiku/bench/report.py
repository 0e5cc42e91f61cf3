"""Describe the machine and append a benchmark section to BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path


def machine_description() -> str:
    """CPU model, core count, memory and Python version of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    cores = f"{os.cpu_count()} cores"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if usable != os.cpu_count():
        cores += f" (this run pinned to {usable}, e.g. by taskset)"
    return f"{cpu}, {cores}{memory}, Python {platform.python_version()}, {platform.system()}"


def append_report(path: Path, title: str, table_markdown: str, notes: str = "") -> None:
    """Append one dated section with the command line, the machine and a Markdown table."""
    command = "zhiku " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"## {title} — {stamp}", "", f"- command: `{command}`", f"- machine: {machine_description()}"]
    if notes:
        section.append(f"- {notes}")
    section += ["", table_markdown.rstrip(), "", ""]
    header = "" if path.exists() else "# Benchmarks\n\nAppended by `zhiku bench ...`; newest last.\n\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(header + "\n".join(section))
