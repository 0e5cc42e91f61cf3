"""Prometheus metrics of one app instance (its own registry, so several apps in one process do not clash)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhiku.embedding.batching import BatchStats
from zhiku.embedding.service import EmbeddingService

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Every metric zhiku exports; ``/metrics`` renders :attr:`registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # the standard process_* metrics (memory, CPU, open files) that every Prometheus client exports by default
        ProcessCollector(registry=r)
        self.requests = Counter(
            "zhiku_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "zhiku_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_inputs = Histogram(
            "zhiku_embedding_batch_inputs",
            "Inputs per model call of the micro-batcher.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "zhiku_embedding_batch_requests",
            "Requests merged into one model call.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "zhiku_embedding_batch_seconds",
            "Duration of one model call.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inputs = Counter("zhiku_embedding_inputs", "Inputs embedded (cache hits included).", ["model"], registry=r)
        self.tokens = Counter("zhiku_embedding_tokens", "Prompt tokens of embedded inputs.", ["model"], registry=r)
        self.truncated = Counter(
            "zhiku_embedding_truncated_inputs",
            "Inputs cut at the model's token limit (truncate=end): text the model did not read.",
            ["model"],
            registry=r,
        )
        self.cache = Counter("zhiku_embedding_cache_lookups", "Embedding cache lookups.", ["result"], registry=r)
        self.queue = Gauge("zhiku_embedding_queue_inputs", "Inputs waiting for a model.", registry=r)
        self.cache_ratio = Gauge("zhiku_embedding_cache_hit_ratio", "Cache hits over lookups so far.", registry=r)
        self.upstream_up = Gauge("zhiku_upstream_up", "1 if a remote embedding server is up.", ["url"], registry=r)

    def bind(self, service: EmbeddingService) -> None:
        """Read queue depth and cache ratio from ``service`` at scrape time."""
        self.queue.set_function(service.queued_inputs)
        self.cache_ratio.set_function(lambda: service.cache_stats.hit_ratio)

    def observe_batch(self, model: str, stats: BatchStats) -> None:
        """Record one micro-batch (called from the model thread; prometheus_client is thread-safe)."""
        self.batch_inputs.labels(model).observe(stats.inputs)
        self.batch_requests.labels(model).observe(stats.requests)
        self.batch_seconds.labels(model).observe(stats.seconds)

    def observe_embeddings(self, model: str, inputs: int, tokens: int, cache_hits: int, truncated: int) -> None:
        """Record one served embeddings request."""
        self.inputs.labels(model).inc(inputs)
        self.truncated.labels(model).inc(truncated)
        self.tokens.labels(model).inc(tokens)
        self.cache.labels("hit").inc(cache_hits)
        self.cache.labels("miss").inc(inputs - cache_hits)


class MetricsMiddleware:
    """Counts requests and times them per route template (pure ASGI, so streaming responses work)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
