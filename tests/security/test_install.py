"""Issue #17, item 10: zhiku installs completely with the pip that Python 3.11's venv ships (23.2.1, not upgraded).

jusText (pulled in by trafilatura) asks for ``lxml[html_clean]`` while lxml spells that extra ``html-clean``;
pip before 24 does not normalise extra names, so it installed lxml without ``lxml_html_clean`` and
``zhiku serve`` died at import (scripts/_env.sh upgrades pip first, which hid it). pyproject.toml now asks for
``lxml_html_clean`` directly.

The check is what that pip resolves, not a full install: a dry run with ``--report`` in a fresh
``python -m venv`` takes about 30 s, a full install (torch included) about 3 min. The report lists exactly the
distributions pip would install; the test walks their requirements, extras included (with a current
``packaging``, which normalises extra names), and fails on any that pip would leave out.
"""

from __future__ import annotations

import ensurepip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
TORCH_SPEC = "torch==2.13.0"  # as scripts/_env.sh: the CPU build, resolved before zhiku


def missing_requirements(report: dict[str, Any]) -> list[str]:
    """Requirements (``dist[extra] -> requirement``) of the distributions to install that the set lacks."""
    dists = {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["install"]}
    environment: dict[str, str] = dict(report["environment"])
    missing: list[str] = []
    seen: set[tuple[str, str]] = set()
    todo = [("zhiku", "")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in dists[name].get("requires_dist", []):
            requirement = Requirement(line)
            marker: Marker | None = requirement.marker
            if marker is not None and not marker.evaluate({**environment, "extra": extra}):
                continue
            if marker is None and extra:
                continue  # unconditional requirements were walked with extra ""
            wanted = canonicalize_name(requirement.name)
            if wanted not in dists:
                missing.append(f"{name}[{extra}] -> {line}")
                continue
            todo.append((wanted, ""))
            todo.extend((wanted, wanted_extra) for wanted_extra in requirement.extras)
    return sorted(missing)


@pytest.mark.slow
def test_the_venv_pip_of_python_3_11_resolves_every_dependency(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    version = subprocess.run([*pip, "--version"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert version.startswith(f"pip {ensurepip.version()} "), version  # the bundled pip, not upgraded
    report_path = tmp_path / "report.json"
    done = subprocess.run([*pip, "install", "--dry-run", "--quiet", "--report", str(report_path), TORCH_SPEC,
                           str(ROOT)], capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    unreachable = any(word in done.stderr for word in ("NewConnectionError", "Temporary failure in name resolution"))
    require(not unreachable, f"no package index reachable:\n{done.stderr[-2000:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["pip_version"] == ensurepip.version()
    names = {canonicalize_name(item["metadata"]["name"]) for item in report["install"]}
    assert {"zhiku", "lxml", "justext", "lxml-html-clean"} <= names
    # pip 23.2.1 still warns "lxml does not provide the extra 'html_clean'" (jusText's spelling); what matters
    # is that nothing is left out
    assert missing_requirements(report) == []
