"""The FastAPI app factory behind ``zhiku serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from zhiku import __version__
from zhiku.accounts import create_bootstrap_account
from zhiku.api.auth import Reader, document_scopes
from zhiku.api.deps import AppState
from zhiku.api.docs import install_docs
from zhiku.api.errors import install_error_handlers
from zhiku.api.keycache import KeyCache
from zhiku.api.limits import BodySizeLimit
from zhiku.api.mcp import McpEndpoint
from zhiku.api.metrics import Metrics, MetricsMiddleware
from zhiku.api.ratelimit import RateLimiter
from zhiku.api.routes import (
    accounts,
    auto_tags,
    chat,
    documents,
    duplicates,
    embeddings,
    health,
    jobs,
    keys,
    knowledge_bases,
    models,
    session,
    sources,
    topics,
)
from zhiku.api.schemas import ERROR_RESPONSES
from zhiku.api.security import SecurityHeaders
from zhiku.config import Settings, get_settings
from zhiku.core import Zhiku
from zhiku.embedding.service import EmbeddingService
from zhiku.keys import create_bootstrap_key
from zhiku.knowledge.sources import FolderWatcher
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.staging import clean_stale_staging
from zhiku.web import STATIC_DIR

log = logging.getLogger(__name__)


async def _watch_upstreams(service: EmbeddingService, interval: float) -> None:
    """Probe remote embedding servers every ``interval`` seconds so failed ones return when they recover."""
    while True:
        await asyncio.sleep(interval)
        try:
            await service.check_upstreams()
        except Exception:
            log.exception("upstream health check failed")


def bootstrap_admin(zhiku: Zhiku) -> None:
    """With auth on and no admin key in the settings: create the first admin key (no key in the database) and the
    first admin account (no account), and print them once."""
    settings = zhiku.settings
    if settings.auth == "off" or settings.admin_api_key is not None:
        return
    secret = create_bootstrap_key(zhiku)
    password = create_bootstrap_account(zhiku)
    lines = []
    if password is not None:
        lines.append(
            "no accounts existed, so an admin account was created. Log in to the web UI with\n\n"
            f"    login: admin\n    password: {password}\n\nand change the password in Settings; "
            "invite others there (or `zhiku users create`)."
        )
    if secret is not None:
        lines.append(
            "no API keys existed, so an admin key was created for programs:\n\n"
            f"    {secret}\n\nUse it as 'Authorization: Bearer <key>'; create more with `zhiku keys create`."
        )
    if lines:  # else both exist (or another process of this server made them)
        banner = "=" * 72
        print(f"{banner}\nzhiku: " + "\n\nzhiku: ".join(lines) + f"\nThey are shown only now.\n{banner}", flush=True)


def create_app(settings: Settings | None = None, *, run_jobs: bool = True) -> FastAPI:
    """Build the app: models load at startup (``/readyz`` turns 200 when done); ``run_jobs`` starts the embedded
    job runner that ingests uploads."""
    settings = settings or get_settings()
    metrics = Metrics()
    service = EmbeddingService(settings, on_batch=metrics.observe_batch)
    metrics.bind(service)
    zhiku = Zhiku(settings)
    state = AppState(
        settings=settings,
        zhiku=zhiku,
        embeddings=service,
        metrics=metrics,
        keys=KeyCache(),
        limiter=RateLimiter(settings),
    )
    mcp = McpEndpoint(state)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(clean_stale_staging, settings.home)  # uploads a crash interrupted
        await asyncio.to_thread(bootstrap_admin, zhiku)
        await service.start()
        if run_jobs and settings.job_backend == "embedded":
            state.runner = job_runner(zhiku)
            state.runner.start()
        folders = None
        if settings.watch_folders:  # after the runner: the first syncs queue ingestion jobs
            folders = FolderWatcher(zhiku, settings.watch_folders)
            folders.start()
        watcher = None
        if settings.remote_urls:
            await service.check_upstreams()
            watcher = asyncio.create_task(_watch_upstreams(service, settings.remote_health_interval))
        log.info("zhiku ready: serving %s", ", ".join(service.specs))
        try:
            async with mcp.running():
                yield
        finally:
            if watcher is not None:
                watcher.cancel()
            if folders is not None:
                await asyncio.to_thread(folders.stop)
            if state.runner is not None:
                await asyncio.to_thread(state.runner.stop)
            await service.stop()
            await asyncio.to_thread(zhiku.close)

    app = FastAPI(
        title="zhiku",
        version=__version__,
        description="Self-hosted knowledge-base semantic search (智库): knowledge bases, documents, jobs, search, "
        "RAG chat, and OpenAI-compatible embeddings. Programs authenticate with `Authorization: Bearer <API key>`; "
        "the web UI with a login session (an `HttpOnly` cookie, plus `X-CSRF-Token` on writes).",
        lifespan=lifespan,
        docs_url=None,  # /docs is served by install_docs from local files; ReDoc (a CDN script) is off
        redoc_url=None,
    )
    app.state.zhiku = state
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (
        embeddings,
        models,
        knowledge_bases,
        documents,
        auto_tags,
        duplicates,
        jobs,
        keys,
        session,
        accounts,
        chat,
        sources,
        topics,
    ):
        document_scopes(module.router.routes)
        app.include_router(module.router, responses=ERROR_RESPONSES)

    app.router.routes.append(mcp.route())  # MCP over streamable HTTP (zhiku.api.mcp)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_docs(app)

    @app.get("/", include_in_schema=False)
    async def web_ui() -> FileResponse:
        """The web UI."""
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        """The icon, for browsers that ask for it without a page's link (e.g. on /openapi.json)."""
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/api/v1/ui", include_in_schema=False)
    async def ui_facts(_: Reader) -> dict[str, Any]:
        """What the web UI shows up front: whether a chat model is configured."""
        return {"chat": {"configured": bool(settings.chat_url), "model": settings.chat_model}}

    def body_limit(path: str) -> int | None:
        if documents.upload_path(path):
            return settings.max_upload_bytes
        if path.startswith(("/v1/", "/api/")):
            return settings.max_request_bytes
        return None

    app.add_middleware(BodySizeLimit, limit_for=body_limit)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)  # outermost: error responses get the headers too
    return app
