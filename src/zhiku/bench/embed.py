"""Embedding throughput: passages per second and tokens per second for several models, side by side."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model


@dataclass(frozen=True)
class EmbedBenchResult:
    """Median throughput of one model over several timed rounds on the same passages."""

    model: str
    passages: int
    tokens: int
    median_seconds: float
    rounds: int

    @property
    def passages_per_second(self) -> float:
        """Passages embedded per second (median round)."""
        return self.passages / self.median_seconds

    @property
    def tokens_per_second(self) -> float:
        """Tokens read per second (median round)."""
        return self.tokens / self.median_seconds


def load_passages(corpora: list[Path], limit: int) -> list[str]:
    """Passages from BEIR ``corpus.jsonl`` files, interleaved across corpora, at most ``limit``."""
    lists = [
        [
            json.loads(line)["text"]
            for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
            if line
        ]
        for folder in corpora
    ]
    mixed = [text for group in zip(*lists, strict=False) for text in group]
    return mixed[:limit]


def bench_embed(
    models: list[str], passages: list[str], settings: Settings, rounds: int = 3, backends: list[str] | None = None
) -> list[EmbedBenchResult]:
    """Time ``rounds`` full passes of each model (under each backend) over ``passages`` (after a warm-up)."""
    results = []
    choices: list[str | None] = list(backends) if backends else [None]
    runs = [(name, backend) for name in models for backend in choices]
    for name, backend in runs:
        current = settings if backend is None else settings.model_copy(update={"embedding_backend": backend})
        embedder = create_embedder(resolve_model(name), current)
        embedder.embed(passages[:8])  # warm-up: lazy loading, allocator, thread pools
        timings = []
        tokens = 0
        for _ in range(rounds):
            started = time.perf_counter()
            result = embedder.embed(passages)
            timings.append(time.perf_counter() - started)
            tokens = result.prompt_tokens
        label = embedder.spec.name if backend is None else f"{embedder.spec.name} ({backend})"
        results.append(EmbedBenchResult(label, len(passages), tokens, statistics.median(timings), rounds))
        embedder.close()
    return results
