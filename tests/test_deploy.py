"""deploy/compose.yaml (Qdrant) and deploy/compose.pgvector.yaml (pgvector) are valid Compose files (checked with
docker-compose, installed by scripts/test)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _config(tmp_path: Path, compose_file: str) -> dict[str, Any]:
    """``docker-compose config`` of one of the deploy files: the file as Compose resolves it."""
    binary = shutil.which("docker-compose")
    require(binary is not None, "docker-compose not installed (apt-get install docker-compose)")
    workdir = tmp_path / "deploy"
    shutil.copytree(DEPLOY, workdir)
    shutil.copy(workdir / "zhiku.env.example", workdir / "zhiku.env")
    done = subprocess.run([str(binary), "-f", str(workdir / compose_file), "config"], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    # both variants: API processes and Celery workers on PostgreSQL and Redis, embeddings from vLLM
    for name in ("api", "worker"):
        service = config["services"][name]
        environment = service["environment"]
        assert environment["ZHIKU_JOB_BACKEND"] == "celery"
        assert environment["ZHIKU_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["ZHIKU_REDIS_URL"] == "redis://redis:6379/0"
        assert {"postgres", "redis", "vllm"} <= set(service["depends_on"])
    api = config["services"]["api"]
    assert api["command"][:2] == ["zhiku", "serve"]
    assert api["command"][api["command"].index("--workers") + 1] == "2"  # API_PROCESSES unset
    assert config["services"]["worker"]["command"][:2] == ["zhiku", "worker"]
    assert '"is_matryoshka": true' in " ".join(config["services"]["vllm"]["command"])
    return config


def test_compose_file_is_valid_and_complete(tmp_path: Path) -> None:
    config = _config(tmp_path, "compose.yaml")
    assert set(config["services"]) == {"api", "worker", "vllm", "postgres", "redis", "qdrant"}
    api = config["services"]["api"]["environment"]
    assert api["ZHIKU_VECTOR_STORE"] == "qdrant"
    assert api["ZHIKU_QDRANT_URL"] == "http://qdrant:6333"
    assert "qdrant" in config["services"]["api"]["depends_on"]
    assert config["services"]["postgres"]["image"].startswith("postgres:")


def test_pgvector_compose_file_is_valid_and_has_no_qdrant(tmp_path: Path) -> None:
    config = _config(tmp_path, "compose.pgvector.yaml")
    assert set(config["services"]) == {"api", "worker", "vllm", "postgres", "redis"}
    assert "qdrant" not in config.get("volumes", {})
    for name in ("api", "worker"):
        service = config["services"][name]
        environment = service["environment"]
        assert environment["ZHIKU_VECTOR_STORE"] == "pgvector"
        # the vectors live in the metadata database: no separate URL, no Qdrant
        assert "ZHIKU_PGVECTOR_URL" not in environment
        assert not any(key.startswith("ZHIKU_QDRANT") for key in environment)
        assert "qdrant" not in service["depends_on"]
    postgres = config["services"]["postgres"]
    assert postgres["image"].startswith("pgvector/pgvector:pg")  # the official pgvector image
    assert any(part.startswith("maintenance_work_mem=") for part in postgres["command"])
    assert postgres["shm_size"]  # parallel HNSW builds need /dev/shm of at least maintenance_work_mem
