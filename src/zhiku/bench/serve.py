"""Serving benchmark: bare sentence-transformers vs ``zhiku serve`` vs Infinity, same model, same passages.

(a) ``SentenceTransformer.encode(batch_size=32)`` in-process: the model's own limit on this machine.
(b) ``zhiku serve`` over loopback HTTP with 1, 8 and 32 concurrent clients, one text per request.
(c) the same load against ``infinity_emb`` serving the same model folder.
Servers run as subprocesses with the embedding cache off; every run embeds every passage once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from zhiku.extras import require_torch


@dataclass(frozen=True)
class ServeBenchRow:
    """One system under one load."""

    system: str
    clients: int
    passages: int
    seconds: float
    p50_ms: float | None
    p95_ms: float | None

    @property
    def passages_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.passages / self.seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(args: list[str], env: dict[str, str], ready_url: str, timeout: float = 300) -> Iterator[None]:
    log = tempfile.NamedTemporaryFile(prefix="zhiku-bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {process.returncode}; log: {log.name}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} not ready after {timeout:g} s; log: {log.name}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def _load(url: str, model: str, texts: list[str], clients: int) -> tuple[float, list[float]]:
    """Send every text as its own request from ``clients`` concurrent clients; wall time and latencies."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in texts:
        queue.put_nowait(text)
    latencies: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            text = queue.get_nowait()
            started = time.perf_counter()
            response = await http.post(url, json={"model": model, "input": [text]})
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=300) as http:
        warm = await http.post(url, json={"model": model, "input": texts[:4]})
        warm.raise_for_status()  # a refused warm-up (auth, a wrong model) stops the run, not hides in its numbers
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - started, latencies


def _row(system: str, clients: int, texts: list[str], seconds: float, latencies: list[float]) -> ServeBenchRow:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000
    return ServeBenchRow(system, clients, len(texts), seconds, statistics.median(ordered) * 1000, p95)


def bench_serving(
    texts: list[str],
    *,
    model: str = "all-minilm-l6-v2",
    client_counts: tuple[int, ...] = (1, 8, 32),
    infinity_bin: Path | None = None,
    rounds: int = 3,
    backends: tuple[str, ...] = ("torch", "onnx-int8"),
) -> list[ServeBenchRow]:
    """Run (a), (b) and (c) on ``texts`` and return one row per system and load (bare: median of rounds).

    Like against like: bare encode and Infinity run on torch, so zhiku serves once per backend in ``backends``
    (its torch row is the comparison; its ONNX int8 row is what it serves by default), each row named with it.
    zhiku runs with authentication off, as Infinity does here: no key checks or rate limits in its numbers."""
    require_torch("the serving benchmark (bare sentence-transformers encode)")
    from sentence_transformers import SentenceTransformer

    from zhiku.embedding.models import model_location, resolve_model

    spec = resolve_model(model)
    location = model_location(spec)
    rows: list[ServeBenchRow] = []

    bare = SentenceTransformer(location, device="cpu")
    bare.encode(texts[:32], batch_size=32)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        bare.encode(texts, batch_size=32)
        timings.append(time.perf_counter() - started)
    rows.append(
        ServeBenchRow("sentence-transformers encode, batch 32", 0, len(texts), statistics.median(timings), None, None)
    )
    del bare

    for backend in backends:
        home = Path(tempfile.mkdtemp(prefix="zhiku-bench-serve-"))
        port = _free_port()
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "ZHIKU_HOME": str(home),
            "ZHIKU_SERVE_MODELS": spec.name,
            "ZHIKU_EMBEDDING_CACHE": "off",
            "ZHIKU_EMBEDDING_BACKEND": backend,
            "ZHIKU_AUTH": "off",
        }
        zhiku = [str(Path(sys.executable).parent / "zhiku"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        with _server(zhiku, env, f"{base}/readyz"):
            for clients in client_counts:
                seconds, latencies = asyncio.run(_load(f"{base}/v1/embeddings", spec.name, texts, clients))
                rows.append(_row(f"zhiku serve ({backend})", clients, texts, seconds, latencies))
        shutil.rmtree(home, ignore_errors=True)

    if infinity_bin is not None and infinity_bin.is_file():
        port = _free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
        args = [
            str(infinity_bin),
            "v2",
            "--model-id",
            location,
            "--served-model-name",
            spec.name,
            "--engine",
            "torch",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        base = f"http://127.0.0.1:{port}"
        with _server(args, env, f"{base}/models"):
            for clients in client_counts:
                seconds, latencies = asyncio.run(_load(f"{base}/embeddings", spec.name, texts, clients))
                rows.append(_row("infinity-emb 0.0.78 (torch)", clients, texts, seconds, latencies))
    return rows
