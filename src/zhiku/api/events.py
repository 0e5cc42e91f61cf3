"""Live job progress as Server-Sent Events, read from the job rows (so any API process can serve any stream)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

from sqlalchemy import or_, select
from starlette.concurrency import run_in_threadpool

from zhiku.api.schemas import JobOut
from zhiku.core import Zhiku
from zhiku.jobs.runner import FINISHED
from zhiku.storage.models import Job, utcnow

POLL_SECONDS = 0.25
RECENT_SECONDS = 30


def _snapshot(zhiku: Zhiku, kb_id: str | None, job_id: str | None) -> list[Job]:
    query = select(Job)
    if job_id is not None:
        query = query.where(Job.id == job_id)
    if kb_id is not None:  # unfinished jobs, and those that finished lately (a stream never rereads history)
        recent = utcnow() - dt.timedelta(seconds=RECENT_SECONDS)
        query = query.where(Job.kb_id == kb_id, or_(Job.status.not_in(FINISHED), Job.finished_at >= recent))
    with zhiku.db.session() as session:
        return list(session.scalars(query.order_by(Job.created_at)))


async def job_events(
    zhiku: Zhiku, *, kb_id: str | None = None, job_id: str | None = None
) -> AsyncIterator[dict[str, str]]:
    """Yield a ``job`` event for every job change; a single-job stream ends once that job has finished."""
    seen: dict[str, tuple[str, str, float]] = {}
    while True:
        jobs = await run_in_threadpool(_snapshot, zhiku, kb_id, job_id)
        for job in jobs:
            state = (job.status, job.stage, round(job.progress, 3))
            if seen.get(job.id) != state:
                seen[job.id] = state
                yield {
                    "event": "job",
                    "id": f"{job.id}:{job.status}:{job.progress:.3f}",
                    "data": JobOut.of(job).model_dump_json(),
                }
        if job_id is not None and (not jobs or jobs[0].status in FINISHED):
            yield {"event": "end", "data": "{}"}
            return
        await asyncio.sleep(POLL_SECONDS)
