"""Remote backend against real OpenAI-compatible servers on loopback.

Happy paths run against Infinity (``infinity-emb``, a real embedding server, in its own venv made by
scripts/test) serving the bundled all-MiniLM-L6-v2. Failure paths (429, 500, timeouts, malformed replies) cannot
be provoked on a healthy real server, so they use ``FaultyServer``: a small fault-injecting HTTP *stub* on
loopback that speaks the OpenAI embeddings shape. Tests using it say so.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.servers import INFINITY_SERVED_NAME, free_port, infinity_server
from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model
from zhiku.embedding.remote import RemoteEmbedder
from zhiku.errors import RemoteEmbeddingError

MINILM = resolve_model("all-minilm-l6-v2")
SERVED_NAME = INFINITY_SERVED_NAME


@pytest.fixture(scope="module")
def infinity_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Infinity serving all-MiniLM-L6-v2 from site-packages, offline, on a free loopback port."""
    with infinity_server(tmp_path_factory.mktemp("infinity")) as url:
        yield url


def remote_settings(tmp_path: Path, *urls: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path,
        "remote_urls": list(urls),
        "remote_model": SERVED_NAME,
        "remote_backoff": 0.01,
        "remote_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


TEXTS = ["The cat sits on the mat.", "A quick brown fox jumps over the lazy dog.", "Embeddings map text to vectors."]


def test_matches_local_model(infinity_url: str, tmp_path: Path) -> None:
    local = create_embedder(MINILM, Settings(home=tmp_path))
    for encoding in ("base64", "float"):
        remote = create_embedder(MINILM, remote_settings(tmp_path, infinity_url, remote_encoding_format=encoding))
        assert isinstance(remote, RemoteEmbedder)
        ours = remote.embed(TEXTS)
        theirs = local.embed(TEXTS)
        assert ours.vectors.shape == (3, 384)
        assert np.min(np.sum(ours.vectors * theirs.vectors, axis=1)) >= 0.999
        assert ours.token_counts == theirs.token_counts
        remote.close()


def test_splits_batches_and_keeps_order(infinity_url: str, tmp_path: Path) -> None:
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(23)]
    remote = create_embedder(MINILM, remote_settings(tmp_path, infinity_url, remote_max_batch=4))
    single = np.concatenate([remote.embed([t]).vectors for t in texts[:5]])
    batched = remote.embed(texts).vectors
    assert batched.shape == (23, 384)
    assert np.min(np.sum(batched[:5] * single, axis=1)) >= 0.9999
    remote.close()


def test_pool_and_dimensions_are_done_client_side(infinity_url: str, tmp_path: Path) -> None:
    long_text = " ".join(f"token{i}" for i in range(600))
    remote = create_embedder(MINILM, remote_settings(tmp_path, infinity_url))
    local = create_embedder(MINILM, Settings(home=tmp_path))
    pooled_remote = remote.embed([long_text], truncate="pool")
    pooled_local = local.embed([long_text], truncate="pool")
    assert pooled_remote.windows[0] > 1
    assert float(pooled_remote.vectors[0] @ pooled_local.vectors[0]) >= 0.999
    remote.close()


# --- failure paths: fault-injecting stub -----------------------------------------------------------------------
Behaviour = Callable[[int, dict[str, Any]], tuple[int, dict[str, str], bytes]]


class FaultyServer:
    """A fault-injecting OpenAI-embeddings *stub* (not a real model server) on a loopback port."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls.append(body)
                status, headers, payload = behaviour(len(outer.calls), body)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ok(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    rng = np.random.default_rng(len(body["input"]))
    data = []
    for i, _ in enumerate(body["input"]):
        vector = rng.standard_normal(384).astype("<f4")
        embedding: Any = (
            base64.b64encode(vector.tobytes()).decode()
            if body.get("encoding_format") == "base64"
            else (vector.tolist())
        )
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    payload = {
        "object": "list",
        "data": data[::-1],
        "model": body["model"],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def error(status: int, message: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"message": message, "type": "error", "code": status}}).encode()
    return status, {"Content-Type": "application/json", **headers}, body


@pytest.fixture
def stub() -> Iterator[Callable[[Behaviour], FaultyServer]]:
    servers: list[FaultyServer] = []

    def start(behaviour: Behaviour) -> FaultyServer:
        servers.append(FaultyServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_retries_429_honouring_retry_after(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    server = stub(lambda n, body: error(429, "slow down", **{"Retry-After": "0.2"}) if n <= 2 else ok(body))
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url))
    started = time.monotonic()
    result = remote.embed(TEXTS)
    assert time.monotonic() - started >= 0.4
    assert len(server.calls) == 3
    assert result.vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)


def test_response_order_follows_index_field(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    server = stub(lambda n, body: ok(body))  # the stub returns data in reverse order
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url, remote_encoding_format="float"))
    vectors = remote.embed(TEXTS).vectors
    rng = np.random.default_rng(3)
    expected = [rng.standard_normal(384) for _ in range(3)]
    for row, want in zip(vectors, expected, strict=True):
        assert float(row @ (want / np.linalg.norm(want))) >= 0.9999


def test_persistent_500_fails_naming_url(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    server = stub(lambda n, body: error(500, "CUDA out of memory"))
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url, remote_max_retries=2))
    with pytest.raises(RemoteEmbeddingError) as info:
        remote.embed(TEXTS)
    assert server.url in info.value.message
    assert "after 3 attempt(s)" in info.value.message
    assert "HTTP 500: CUDA out of memory" in info.value.message
    assert info.value.upstream_status == 500
    assert len(server.calls) == 3


def test_client_error_is_not_retried(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    server = stub(lambda n, body: error(400, "model 'x' does not exist"))
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url))
    with pytest.raises(RemoteEmbeddingError, match=r"refused the request: HTTP 400: model 'x' does not exist"):
        remote.embed(TEXTS)
    assert len(server.calls) == 1


def test_timeout(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    def slow(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.5)
        return ok(body)

    server = stub(slow)
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url, remote_timeout=0.3, remote_max_retries=1))
    with pytest.raises(RemoteEmbeddingError, match=r"timed out after 0.3 s") as info:
        remote.embed(TEXTS)
    assert server.url in info.value.message


def test_server_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    remote = create_embedder(MINILM, remote_settings(tmp_path, url, remote_max_retries=1))
    with pytest.raises(RemoteEmbeddingError, match="connection failed") as info:
        remote.embed(TEXTS)
    assert url in info.value.message


def test_fails_over_to_next_url(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    server = stub(lambda n, body: ok(body))
    remote = create_embedder(MINILM, remote_settings(tmp_path, down, server.url, remote_max_retries=2))
    for _ in range(4):  # whichever URL a batch starts on, it ends on the healthy one
        assert remote.embed(TEXTS).vectors.shape == (3, 384)


def test_malformed_response(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    server = stub(lambda n, body: (200, {"Content-Type": "application/json"}, b'{"data": [{"index": 0}]}'))
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url))
    with pytest.raises(RemoteEmbeddingError, match="malformed response"):
        remote.embed(TEXTS)


def test_wrong_count_or_dimension(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    def short(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        status, headers, payload = ok(body)
        data = json.loads(payload)
        data["data"] = data["data"][:1]
        return status, headers, json.dumps(data).encode()

    server = stub(short)
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url))
    with pytest.raises(RemoteEmbeddingError, match="returned 1 embeddings for 3 inputs"):
        remote.embed(TEXTS)


def test_bounded_concurrency(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def tracked(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return ok(body)

    server = stub(tracked)
    settings = remote_settings(tmp_path, server.url, remote_max_batch=1, remote_max_concurrency=3)
    remote = create_embedder(MINILM, settings)
    remote.embed([f"text {i}" for i in range(12)])
    assert len(server.calls) == 12
    assert all(len(call["input"]) == 1 for call in server.calls)
    assert 2 <= peak <= 3


def test_api_key_is_sent(stub: Callable[[Behaviour], FaultyServer], tmp_path: Path) -> None:
    seen: list[str] = []

    class KeyCheck(FaultyServer):
        pass

    server = stub(lambda n, body: ok(body))
    original = server.server.RequestHandlerClass.do_POST  # type: ignore[attr-defined]

    def capture(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.headers.get("Authorization", ""))
        original(handler)

    server.server.RequestHandlerClass.do_POST = capture  # type: ignore[attr-defined]
    remote = create_embedder(MINILM, remote_settings(tmp_path, server.url, remote_api_key="sk-test"))
    remote.embed(["hello"])
    assert seen == ["Bearer sk-test"]
