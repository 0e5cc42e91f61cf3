"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zhiku.api.auth import authenticate
from zhiku.api.deps import AppState, app_state
from zhiku.api.schemas import ErrorResponse
from zhiku.errors import PermissionDeniedError

router = APIRouter(tags=["operations"])
METRICS_TENANT = "default"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: Annotated[AppState, Depends(app_state)]) -> JSONResponse:
    """200 when the models are loaded and, with remote servers, at least one answers; else 503."""
    service = state.embeddings
    upstreams = service.upstreams()
    ready = service.ready and (not upstreams or any(upstreams.values()))
    body = {
        "status": "ready" if ready else "not ready",
        "models": sorted(service.specs),
        "upstreams": upstreams,
        "queued_inputs": service.queued_inputs(),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        401: {"model": ErrorResponse, "description": "No, an unknown or a revoked API key (with `metrics_auth` on)"},
        403: {"model": ErrorResponse, "description": "A key of another tenant than `default`"},
    },
)
async def metrics(request: Request, state: Annotated[AppState, Depends(app_state)]) -> Response:
    """Prometheus text format. With `metrics_auth` (the default), only for API keys of the `default` tenant
    (`Authorization: Bearer <key>`, e.g. Prometheus' `authorization` scrape setting)."""
    if state.settings.metrics_auth:
        principal = await authenticate(request, state)
        if principal.tenant_id != METRICS_TENANT:
            raise PermissionDeniedError(
                f"/metrics describes the whole server: it needs a key of the {METRICS_TENANT!r} tenant "
                "(any scope), or the setting metrics_auth=false"
            )
    for url, up in state.embeddings.upstreams().items():
        state.metrics.upstream_up.labels(url).set(1 if up else 0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
