"""The FastAPI app factory behind ``zhiku serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from zhiku import __version__
from zhiku.api.deps import AppState
from zhiku.api.errors import install_error_handlers
from zhiku.api.limits import BodySizeLimit
from zhiku.api.metrics import Metrics, MetricsMiddleware
from zhiku.api.routes import embeddings, health
from zhiku.config import Settings, get_settings
from zhiku.embedding.service import EmbeddingService

log = logging.getLogger(__name__)


async def _watch_upstreams(service: EmbeddingService, interval: float) -> None:
    """Probe remote embedding servers every ``interval`` seconds so failed ones return when they recover."""
    while True:
        await asyncio.sleep(interval)
        try:
            await service.check_upstreams()
        except Exception:
            log.exception("upstream health check failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: models load at startup (``/readyz`` turns 200 when done)."""
    settings = settings or get_settings()
    metrics = Metrics()
    service = EmbeddingService(settings, on_batch=metrics.observe_batch)
    metrics.bind(service)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        watcher = None
        if settings.remote_urls:
            await service.check_upstreams()
            watcher = asyncio.create_task(_watch_upstreams(service, settings.remote_health_interval))
        log.info("zhiku ready: serving %s", ", ".join(service.specs))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            await service.stop()

    app = FastAPI(
        title="zhiku",
        version=__version__,
        description="Self-hosted knowledge-base semantic search (智库): OpenAI-compatible embeddings.",
        lifespan=lifespan,
    )
    app.state.zhiku = AppState(settings=settings, embeddings=service, metrics=metrics)
    install_error_handlers(app)
    app.include_router(embeddings.router)
    app.include_router(health.router)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_request_bytes, applies_to=lambda path: path.startswith("/v1/")
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
