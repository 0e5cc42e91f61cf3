"""Search throughput of whole servers: one embedded ``zhiku serve`` process (SQLite + Qdrant Edge) next to
``zhiku serve --workers N`` on PostgreSQL + pgvector, both over loopback HTTP, the same corpus and queries.

Both servers run at once (fresh homes, auth off, embedding and query caches off so that every query is embedded,
no read rate limit); the corpus passages are uploaded through the API as one document each and ingested by the
servers themselves. Then, round by round and client count by client count, the servers take turns under the same
closed-loop load: each client sends its next ``POST /api/v1/knowledge-bases/{kb}/search`` (hybrid, the default)
as soon as the last one answered. Reported: searches per second and p50/p95 latency, medians over the rounds; and
where a search's time goes, from the ``Server-Timing`` header of every answer (the server's stages) and the
client's own clock (what is left: HTTP, authentication, validation, JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from zhiku.bench.serve import _free_port, _server


@dataclass(frozen=True)
class SearchServingRow:
    """One server set-up under one load (medians over the rounds)."""

    setup: str
    clients: int
    queries: int
    qps: float
    p50_ms: float
    p95_ms: float
    stages: dict[str, float]
    """Median milliseconds of each ``Server-Timing`` stage over every search, ``outside`` (the client's latency less
    the server's ``search``) and ``overhead`` (the share of the latency that is neither embedding nor store)."""
    floor_ms: float = 0.0
    """The HTTP floor: median latency of ``GET /healthz`` (no work behind it) from the same client, unloaded."""


CORE_STAGES = ("embed", "dense", "lexical")
"""The model and the index: what a search cannot do without."""


def server_timing(header: str) -> dict[str, float]:
    """``{"embed": 2.1, ...}`` from a ``Server-Timing`` header (``embed;dur=2.1, dense;dur=0.9``)."""
    stages: dict[str, float] = {}
    for metric in header.split(","):
        name, _, params = metric.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                with contextlib.suppress(ValueError):
                    stages[name] = float(value)
    return stages


@dataclass(frozen=True)
class ServerSetup:
    """A way to run ``zhiku serve``: a label, its ``--workers`` and extra ``ZHIKU_*`` settings."""

    label: str
    workers: int
    settings: dict[str, str]


@contextlib.contextmanager
def _running(setup: ServerSetup, home: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ZHIKU_HOME": str(home), "ZHIKU_AUTH": "off"}
    env |= {"ZHIKU_EMBEDDING_CACHE": "off", "ZHIKU_QUERY_CACHE_SIZE": "0"}  # every query is embedded
    env |= {"ZHIKU_RATE_LIMIT_READ": "1000000/minute"}  # the load is the point
    env |= {f"ZHIKU_{k.upper()}": v for k, v in setup.settings.items()}
    args = [str(Path(sys.executable).parent / "zhiku"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(setup.workers)]
    base = f"http://127.0.0.1:{port}"
    with _server(args, env, f"{base}/readyz"):
        yield base


def _ingest(base: str, passages: Sequence[str], timeout: float = 3600) -> str:
    """Create a knowledge base and upload every passage as a document; return its id once all are ready."""
    with httpx.Client(base_url=base, timeout=300) as http:
        # a name of its own: the PostgreSQL database may hold an earlier run's knowledge bases
        created = http.post("/api/v1/knowledge-bases", json={"name": f"bench-{uuid.uuid4().hex[:8]}"})
        created.raise_for_status()
        kb_id = str(created.json()["id"])
        for start in range(0, len(passages), 50):
            files = [
                ("files", (f"passage-{start + i:06d}.txt", text.encode("utf-8"), "text/plain"))
                for i, text in enumerate(passages[start : start + 50])
            ]
            http.post(f"/api/v1/knowledge-bases/{kb_id}/documents", files=files).raise_for_status()
        deadline = time.monotonic() + timeout
        while True:
            documents = http.get(f"/api/v1/knowledge-bases/{kb_id}/documents").json()
            if all(d["status"] in ("ready", "failed") for d in documents):
                return kb_id
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingestion at {base} not finished after {timeout:g} s")
            time.sleep(1)


async def _load(
    url: str, queries: Sequence[str], clients: int
) -> tuple[float, list[float], list[dict[str, float]], float]:
    """Every query once, ``clients`` closed-loop clients; wall seconds, per-request latencies, per-request
    stage times (the server's ``Server-Timing`` and ``outside``: the latency less the server's ``search``) and the
    HTTP floor (median milliseconds of an unloaded ``GET /healthz`` from the same client)."""
    pending = list(reversed(queries))
    latencies: list[float] = []
    split: list[dict[str, float]] = []

    async def client(http: httpx.AsyncClient) -> None:
        while pending:
            query = pending.pop()
            started = time.perf_counter()
            response = await http.post(url, json={"query": query})
            response.raise_for_status()
            latency = time.perf_counter() - started
            latencies.append(latency)
            stages = server_timing(response.headers.get("server-timing", ""))
            if "search" in stages:
                stages["outside"] = latency * 1000 - stages["search"]
                core = sum(stages.get(stage, 0.0) for stage in CORE_STAGES)
                stages["overhead"] = 1 - core / (latency * 1000)
            split.append(stages)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=300) as http:
        for query in queries[:10]:  # warm-up
            (await http.post(url, json={"query": query})).raise_for_status()
        health = url.split("/api/", 1)[0] + "/healthz"
        floor = []
        for _ in range(30):
            started = time.perf_counter()
            (await http.get(health)).raise_for_status()
            floor.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - started, latencies, split, statistics.median(floor)


def load_corpus(folder: Path) -> tuple[list[str], list[str]]:
    """A BEIR folder's passages and queries."""
    passages = [json.loads(line)["text"] for line in (folder / "corpus.jsonl").read_text("utf-8").splitlines() if line]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text("utf-8").splitlines() if line]
    return passages, queries


def bench_search_serving(
    corpus: Path,
    setups: Sequence[ServerSetup],
    *,
    client_counts: Sequence[int] = (1, 4, 16),
    queries: int = 300,
    rounds: int = 3,
) -> list[SearchServingRow]:
    """Start every set-up, ingest ``corpus`` into each, then time ``queries`` searches per client count and round,
    the set-ups taking turns; one row per set-up and client count."""
    passages, questions = load_corpus(corpus)
    questions = (questions * (queries // max(1, len(questions)) + 1))[:queries]
    measured: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    split: dict[tuple[str, int], list[dict[str, float]]] = {}
    floors: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="zhiku-bench-serve-search-") as scratch, contextlib.ExitStack() as stack:
        urls = {}
        for number, setup in enumerate(setups):
            base = stack.enter_context(_running(setup, Path(scratch) / f"home-{number}"))
            urls[setup.label] = f"{base}/api/v1/knowledge-bases/{_ingest(base, passages)}/search"
        for _ in range(rounds):
            for clients in client_counts:
                for setup in setups:
                    seconds, latencies, stages, floor = asyncio.run(_load(urls[setup.label], questions, clients))
                    split.setdefault((setup.label, clients), []).extend(stages)
                    floors.setdefault((setup.label, clients), []).append(floor)
                    ordered = sorted(latencies)
                    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
                    row = (len(questions) / seconds, statistics.median(ordered) * 1000, p95 * 1000)
                    measured.setdefault((setup.label, clients), []).append(row)
    return [
        SearchServingRow(
            setup.label,
            clients,
            len(questions),
            statistics.median(r[0] for r in measured[(setup.label, clients)]),
            statistics.median(r[1] for r in measured[(setup.label, clients)]),
            statistics.median(r[2] for r in measured[(setup.label, clients)]),
            _median_stages(split[(setup.label, clients)]),
            statistics.median(floors[(setup.label, clients)]),
        )
        for clients in client_counts
        for setup in setups
    ]


def _median_stages(samples: Sequence[dict[str, float]]) -> dict[str, float]:
    names = {name for sample in samples for name in sample}
    return {name: statistics.median(s.get(name, 0.0) for s in samples) for name in names}


def render_stage_table(rows: Sequence[SearchServingRow]) -> str:
    """Where a search's time goes, per set-up and load: the median of each stage (ms), of the overhead share, and
    the HTTP floor (an unloaded ``GET /healthz``)."""
    columns = ("filter", "embed", "dense", "lexical", "fuse", "rows", "score", "search", "outside")
    lines = [
        "| server | clients | " + " | ".join(columns) + " | p50 | overhead | HTTP floor |",
        "|---|---|" + "---|" * (len(columns) + 3),
    ]
    for r in rows:
        cells = " | ".join(f"{r.stages.get(name, 0.0):.2f}" for name in columns)
        overhead = r.stages.get("overhead", 0.0)
        lines.append(f"| {r.setup} | {r.clients} | {cells} | {r.p50_ms:.1f} | {overhead:.0%} | {r.floor_ms:.2f} |")
    return "\n".join(lines)


def render_serving_table(rows: Sequence[SearchServingRow]) -> str:
    """The rows as a Markdown table."""
    lines = ["| server | clients | searches | searches/s | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r.setup} | {r.clients} | {r.queries} | {r.qps:.1f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} |" for r in rows
    ]
    return "\n".join(lines)
