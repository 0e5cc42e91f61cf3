"""Background jobs of the caller's tenant: list, get, cancel, retry, and live progress (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sse_starlette.sse import EventSourceResponse

from zhiku.api.auth import Reader, Writer
from zhiku.api.deps import AppState, State
from zhiku.api.events import job_events
from zhiku.api.schemas import JobOut
from zhiku.api.streams import LimitedEventStream, stream_identity
from zhiku.jobs.runner import cancel_job, retry_job
from zhiku.keys import Principal
from zhiku.knowledge.jobs import get_job, list_jobs
from zhiku.storage.models import Job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


def _job(state: AppState, principal: Principal, job_id: str) -> Job:
    """A job of the caller's tenant by id or unique id prefix (others' jobs are "not found", never "forbidden")."""
    return get_job(state.zhiku, job_id, tenant_id=principal.tenant_id)


@router.get("")
def list_all(
    state: State,
    principal: Reader,
    knowledge_base_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    """Newest jobs first, optionally of one knowledge base or status."""
    rows = list_jobs(state.zhiku, status, limit, tenant_id=principal.tenant_id, kb_id=knowledge_base_id)
    return [JobOut.of(job) for job, _ in rows]


@router.get("/{job_id}")
def get(job_id: str, state: State, principal: Reader) -> JobOut:
    """One job with its stage and progress."""
    return JobOut.of(_job(state, principal, job_id))


@router.post("/{job_id}/cancel")
def cancel(job_id: str, state: State, principal: Writer) -> JobOut:
    """Cancel a queued job, or ask a running one to stop."""
    return JobOut.of(cancel_job(state.zhiku, _job(state, principal, job_id).id))


@router.post("/{job_id}/retry")
def retry(job_id: str, state: State, principal: Writer) -> JobOut:
    """Queue a failed or cancelled job again."""
    return JobOut.of(retry_job(state.zhiku, _job(state, principal, job_id).id))


@router.get("/{job_id}/events", response_class=EventSourceResponse)
def events(job_id: str, request: Request, state: State, principal: Reader) -> EventSourceResponse:
    """Server-Sent Events: a `job` event at every change of the job, then `end` once it has finished. At most
    `max_event_streams_per_key` streams per key at once (429 beyond)."""
    job = _job(state, principal, job_id)
    return LimitedEventStream(
        job_events(state.zhiku, job_id=job.id),
        slots=state.streams,
        limit=state.settings.max_event_streams_per_key,
        identity=stream_identity(request, principal),
    )
