"""Handing queued jobs to Celery workers when ``job_backend = "celery"`` (a no-op for the embedded runner).

The job rows stay the truth: a message only says "job X may be runnable". Workers claim a job atomically, so a
duplicate or late message is harmless (at-least-once delivery made idempotent), and every worker's heartbeat
re-sends jobs that have waited too long, so a lost message delays a job but never loses it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from zhiku.storage.models import Job, JobStatus, utcnow

if TYPE_CHECKING:
    from zhiku.core import Zhiku

log = logging.getLogger(__name__)
RUN_JOB_TASK = "zhiku.run_job"
QUEUE = "zhiku"


@lru_cache(maxsize=4)
def _producer(broker_url: str) -> Any:
    from celery import Celery

    app = Celery("zhiku-producer", broker=broker_url)
    app.conf.broker_connection_retry_on_startup = True
    return app


def dispatch(zhiku: Zhiku, job_ids: Iterable[str], *, countdown: float = 0.0) -> None:
    """Tell the Celery workers about queued jobs (after their rows are committed)."""
    settings = zhiku.settings
    ids = [job_id for job_id in job_ids if job_id]
    if settings.job_backend != "celery" or not ids:
        return
    app = _producer(str(settings.redis_url))
    for job_id in ids:
        try:
            app.send_task(RUN_JOB_TASK, args=[job_id], queue=QUEUE, countdown=countdown or None)
        except Exception:  # the broker is down: the heartbeat sweep sends it again later
            log.exception("could not dispatch job %s; it stays queued and will be re-sent", job_id)


def redispatch_forgotten(zhiku: Zhiku) -> int:
    """Re-send runnable jobs that have waited longer than ``job_stale_seconds`` (e.g. a message was lost)."""
    cutoff = utcnow() - dt.timedelta(seconds=zhiku.settings.job_stale_seconds)
    with zhiku.db.session() as session:
        ids = list(
            session.scalars(select(Job.id).where(Job.status == JobStatus.queued, Job.run_after <= cutoff).limit(500))
        )
        if ids:  # not re-sent again before another full wait
            session.execute(
                update(Job).where(Job.id.in_(ids), Job.status == JobStatus.queued).values(run_after=utcnow())
            )
    dispatch(zhiku, ids)
    return len(ids)
