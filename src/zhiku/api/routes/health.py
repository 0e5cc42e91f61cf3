"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zhiku.api.deps import AppState, app_state

router = APIRouter(tags=["operations"])


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
    body = {"status": "ready" if ready else "not ready", "models": sorted(service.specs), "upstreams": upstreams,
            "queued_inputs": service.queued_inputs()}  # fmt: skip
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(state: Annotated[AppState, Depends(app_state)]) -> Response:
    """Prometheus text format."""
    for url, up in state.embeddings.upstreams().items():
        state.metrics.upstream_up.labels(url).set(1 if up else 0)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
