"""Sustained overload: 64 concurrent clients against a small queue. Only 200s and documented 429s (with
Retry-After), the server stays responsive, and its memory does not grow."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.servers import zhiku_server

CLIENTS = 64
SECONDS = 20.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_64_clients_overloading_a_small_queue(tmp_path: Path) -> None:
    settings = {"queue_max_inputs": "32", "batch_max_inputs": "16", "embedding_cache": "off"}
    with zhiku_server(tmp_path, **settings) as (url, pid):
        statuses: Counter[int] = Counter()
        missing_retry_after = 0
        rss: list[int] = []

        async def client(index: int, stop_at: float, http: httpx.AsyncClient) -> None:
            nonlocal missing_retry_after
            n = 0
            while time.monotonic() < stop_at:
                text = f"client {index} request {n} " + "lorem ipsum dolor " * (n % 20)
                response = await http.post("/v1/embeddings", json={"input": [text, text + " again"]})
                statuses[response.status_code] += 1
                if response.status_code == 429:
                    missing_retry_after += "retry-after" not in response.headers
                    await asyncio.sleep(0.05)
                n += 1

        async def sample_memory(stop_at: float) -> None:
            while time.monotonic() < stop_at:
                rss.append(rss_bytes(pid))
                await asyncio.sleep(1.0)

        async def run() -> None:
            limits = httpx.Limits(max_connections=CLIENTS)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
                stop_at = time.monotonic() + SECONDS
                await asyncio.gather(sample_memory(stop_at), *(client(i, stop_at, http) for i in range(CLIENTS)))

        asyncio.run(run())
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[200] > 100
        assert statuses[429] > 0  # the queue bound was reached and answered with 429s
        assert missing_retry_after == 0
        warm = max(rss[2:5])  # after the first seconds of load
        assert max(rss[5:]) < warm + 64 * 1024 * 1024, [r // 2**20 for r in rss]
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["queued_inputs"] == 0
