"""The queries of jobs that the CLI and the API need: list, find (within a tenant), progress of a set of jobs."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from zhiku.core import Zhiku
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import (
    Document,
    Job,
    JobStatus,
    KnowledgeBase,
)


def unfinished_jobs(zhiku: Zhiku, kb_id: str, exclude: Collection[str] = ()) -> list[str]:
    """Ids of a knowledge base's queued and running jobs (e.g. interrupted by a crash), but those in ``exclude``."""
    with zhiku.db.session() as session:
        rows = session.scalars(
            select(Job.id).where(Job.kb_id == kb_id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
        return [job_id for job_id in rows if job_id not in exclude]


@dataclass(frozen=True)
class JobsProgress:
    """How far a set of jobs is: how many finished, the chunks embedded, and the scanned pages read by OCR so far
    out of those found (in the jobs that have scanned pages)."""

    done: int
    chunks: int
    ocr_pages_done: int = 0
    ocr_pages: int = 0


def job_progress(zhiku: Zhiku, job_ids: Sequence[str], finished: Collection[str]) -> JobsProgress:
    """How far ``job_ids`` are (``finished``: the statuses that count as done)."""
    with zhiku.db.session() as session:
        done = session.scalar(
            select(func.count()).select_from(Job).where(Job.id.in_(job_ids), Job.status.in_(finished))
        )
        payloads = list(session.scalars(select(Job.payload).where(Job.id.in_(job_ids))))
    return JobsProgress(done or 0, *_payload_progress(payloads))


def _payload_progress(payloads: Iterable[Mapping[str, Any]]) -> tuple[int, int, int]:
    """Chunks embedded, OCR pages read and OCR pages found, summed over job payloads (or the API's ``details``)."""
    chunks = ocr_done = ocr_total = 0
    for payload in payloads:
        chunks += int(payload.get("embedded", 0))
        ocr_done += int(payload.get("ocr_pages_done", 0))
        ocr_total += int(payload.get("ocr_pages", 0))
    return chunks, ocr_done, ocr_total


def details_progress(done: int, details: Iterable[Mapping[str, Any]]) -> JobsProgress:
    """:class:`JobsProgress` from the ``details`` of jobs as the API lists them (``done`` of them finished)."""
    return JobsProgress(done, *_payload_progress(details))


def _jobs_of(tenant_id: str | None) -> Any:
    """Jobs, of one tenant's knowledge bases when ``tenant_id`` is given (another tenant's jobs are not found)."""
    query = select(Job)
    if tenant_id is not None:
        query = query.join(KnowledgeBase, Job.kb_id == KnowledgeBase.id).where(KnowledgeBase.tenant_id == tenant_id)
    return query


def list_jobs(
    zhiku: Zhiku,
    status: str | None = None,
    limit: int = 50,
    *,
    tenant_id: str | None = None,
    kb_id: str | None = None,
) -> list[tuple[Job, str | None]]:
    """The newest ``limit`` jobs (only those in ``status``, of ``tenant_id``, of knowledge base ``kb_id``, when
    given), each with its document's file name."""
    with zhiku.db.session() as session:
        query = _jobs_of(tenant_id).add_columns(Document.filename).outerjoin(Document, Job.document_id == Document.id)
        if status:
            query = query.where(Job.status == status)
        if kb_id:
            query = query.where(Job.kb_id == kb_id)
        rows = session.execute(query.order_by(Job.created_at.desc()).limit(limit)).all()
    return [(job, filename) for job, filename in rows]


def get_job(zhiku: Zhiku, job_id: str, *, tenant_id: str | None = None) -> Job:
    """The job of ``job_id`` or a unique prefix of it (among ``tenant_id``'s jobs when given)."""
    with zhiku.db.session() as session:
        job: Job = find_by_id(session, _jobs_of(tenant_id), Job.id, job_id, what="job")
    return job
