"""deploy/compose.yaml is a valid Compose file (checked with docker-compose, installed by scripts/test)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import require

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_compose_file_is_valid_and_complete(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    require(binary is not None, "docker-compose not installed (apt-get install docker-compose)")
    workdir = tmp_path / "deploy"
    shutil.copytree(DEPLOY, workdir)
    shutil.copy(workdir / "zhiku.env.example", workdir / "zhiku.env")
    done = subprocess.run([str(binary), "-f", str(workdir / "compose.yaml"), "config"], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert set(config["services"]) == {"api", "worker", "vllm", "postgres", "redis", "qdrant"}
    api = config["services"]["api"]["environment"]
    assert api["ZHIKU_VECTOR_STORE"] == "qdrant"
    assert api["ZHIKU_JOB_BACKEND"] == "celery"
    assert '"is_matryoshka": true' in " ".join(config["services"]["vllm"]["command"])
