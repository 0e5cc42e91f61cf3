"""`zhiku serve` fronting OpenAI-compatible upstreams: Infinity (a real embedding server) plus a dead URL.

Round-robin over healthy servers, failed ones skipped until a health check passes, readiness and metrics report
each upstream, and with every upstream down requests get a clear 502 while the server stays up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.servers import INFINITY_SERVED_NAME, free_port, infinity_server, zhiku_server
from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with infinity_server(tmp_path_factory.mktemp("infinity")) as url:
        yield url


def test_fronting_a_live_and_a_dead_upstream(infinity: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = {
        "serve_models": "all-minilm-l6-v2",
        "remote_urls": json.dumps([dead, infinity]),
        "remote_model": INFINITY_SERVED_NAME,
        "remote_backoff": "0.01",
        "remote_health_interval": "60",
        "embedding_cache": "off",
    }
    texts = ["The cat sits on the mat.", "Embeddings map text to vectors.", "知识库"]
    local = create_embedder(resolve_model("all-minilm-l6-v2"), Settings(home=tmp_path)).embed(texts).vectors
    with zhiku_server(tmp_path, **settings) as (url, _):
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["upstreams"] == {dead: False, infinity: True}
        for _ in range(4):  # round-robin never picks the dead server while it is marked down
            body = httpx.post(f"{url}/v1/embeddings", json={"input": texts}, timeout=60).json()
            vectors = np.asarray([item["embedding"] for item in body["data"]])
            assert np.min(np.sum(vectors * local, axis=1)) > 0.999
        assert 'zhiku_upstream_up{url="' + dead + '"} 0.0' in httpx.get(f"{url}/metrics").text


def test_requests_with_every_upstream_down_get_502(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = {"serve_models": "all-minilm-l6-v2", "remote_urls": dead, "remote_max_retries": "1",
                "remote_backoff": "0.01", "embedding_cache": "off"}  # fmt: skip
    with zhiku_server(tmp_path, ready_path="/healthz", **settings) as (url, _):
        assert httpx.get(f"{url}/readyz").status_code == 503
        response = httpx.post(f"{url}/v1/embeddings", json={"input": "hello"}, timeout=60)
        assert response.status_code == 502
        error = response.json()["error"]
        assert error["code"] == "upstream_error"
        assert dead in error["message"]
        assert httpx.get(f"{url}/healthz").status_code == 200
