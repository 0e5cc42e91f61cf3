"""The embedded job runner: worker threads that claim queued job rows, heartbeat, retry and resume.

The runner knows jobs, not what they do: it is handed its task table (kind → task; the application's table is
:mod:`zhiku.pipeline.tasks`) and runs each claimed job with the task of its kind.

Claiming is one conditional UPDATE (``... WHERE id = ? AND status = 'queued'``), so two runners never run the
same job. A job whose heartbeat stops (its process died) is put back in the queue and resumed; the ingestion
task is idempotent per (document, version), so a resumed job neither loses nor duplicates anything.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update

from zhiku.core import Zhiku
from zhiku.errors import (
    ConflictError,
    DocumentError,
    NotFoundError,
    OverloadedError,
    RemoteEmbeddingError,
    VectorStoreError,
    ZhikuError,
)
from zhiku.jobs.dispatch import dispatch, redispatch_forgotten
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import Document, DocumentStatus, Job, JobStatus, utcnow

log = logging.getLogger(__name__)

FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
GROUP_BYTES = 96 * 1024
"""Most bytes of source files in one group of jobs run together (a group's first job is always taken). About a
model batch or two of plain text: small enough that the next group is parsed while this one is embedded."""

Outcomes = dict[str, BaseException | None]
"""How each job of a group ended: ``None`` = done, else the exception that ended it."""


class JobDeferredError(Exception):
    """A job cannot run yet (e.g. its knowledge base is being re-indexed); it is queued again without using up
    an attempt."""

    def __init__(self, reason: str, delay: float = 2.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class JobCancelledError(Exception):
    """Raised inside a task when its job was cancelled."""


class JobInterruptedError(Exception):
    """Raised inside a task when its runner is stopping: the job goes back to the queue as it is (without using up
    an attempt) and resumes later; tasks are idempotent, so nothing is lost or duplicated."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # the database went away, is locked or restarting
    sa_exc.TimeoutError,  # no connection free in the pool
    sa_exc.InterfaceError,
    ConnectionError,
    TimeoutError,
    BlockingIOError,
    RemoteEmbeddingError,  # an embedding server is down or overloaded
    OverloadedError,
    VectorStoreError,  # the vector store failed an operation that should work (I/O, busy, being re-created)
)
"""Failures that may pass by themselves: a job that meets one is retried with backoff, up to ``max_attempts``.
Everything else (a bug, a missing package, bad input) fails the job at once with its reason."""


def is_transient(error: BaseException) -> bool:
    """True when retrying later may help (see :data:`TRANSIENT_ERRORS`)."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    try:
        import redis.exceptions
    except ImportError:
        return False
    return isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)


def describe_failure(error: BaseException) -> str:
    """A job's failure reason, in words a user can act on."""
    if isinstance(error, ImportError):
        missing = f" ({error.name})" if error.name else ""
        return (
            f"a package zhiku needs is missing or broken{missing}: {error}; reinstall zhiku "
            "(`pip install --force-reinstall zhiku`) and retry the job"
        )
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class JobContext:
    """What a running task sees of its job: progress reporting and cancellation checks."""

    def __init__(
        self, zhiku: Zhiku, job_id: str, min_interval: float = 0.3, *, stopping: threading.Event | None = None
    ) -> None:
        self.zhiku = zhiku
        self.job_id = job_id
        self.stopping = stopping
        self._min_interval = min_interval
        self._last = 0.0

    def progress(self, stage: str, fraction: float, *, force: bool = False, **details: Any) -> None:
        """Record the stage and a 0..1 fraction (throttled); raise :class:`JobCancelledError` if cancel was asked,
        :class:`JobInterruptedError` if the runner is stopping."""
        if self.stopping is not None and self.stopping.is_set():
            raise JobInterruptedError
        now = time.monotonic()
        if not force and now - self._last < self._min_interval:
            return
        self._last = now
        with self.zhiku.db.session() as session:
            job = session.get_one(Job, self.job_id)
            if job.cancel_requested:
                raise JobCancelledError
            job.stage, job.progress, job.heartbeat_at = stage, max(0.0, min(1.0, fraction)), utcnow()
            if details:
                job.payload = {**job.payload, **details}


class GroupProgress:
    """Progress reports and cancellation checks for jobs that run together, one statement for all of them."""

    def __init__(
        self,
        zhiku: Zhiku,
        job_ids: Sequence[str],
        min_interval: float = 0.3,
        *,
        stopping: threading.Event | None = None,
    ) -> None:
        self.zhiku = zhiku
        self.job_ids = list(job_ids)
        self.cancelled: set[str] = set()
        self.stopping = stopping
        self._min_interval = min_interval
        self._last = 0.0

    def report(
        self, stage: str, fraction: float, *, force: bool = False, details: dict[str, Any] | None = None
    ) -> set[str]:
        """Record the stage and a 0..1 fraction (throttled unless ``force``); return the jobs cancelled so far.

        ``details`` are merged into each job's payload (what clients show beside the bar, e.g. pages read by OCR).
        Cancelled jobs are no longer reported on; the caller drops them at its next safe point. Raises
        :class:`JobInterruptedError` when the runner is stopping.
        """
        if self.stopping is not None and self.stopping.is_set():
            raise JobInterruptedError
        now = time.monotonic()
        live = [job_id for job_id in self.job_ids if job_id not in self.cancelled]
        if not live or (not force and now - self._last < self._min_interval):
            return self.cancelled
        self._last = now
        with self.zhiku.db.session() as session:
            self.cancelled |= set(session.scalars(select(Job.id).where(Job.id.in_(live), Job.cancel_requested)))
            reported = [job_id for job_id in live if job_id not in self.cancelled]
            session.execute(
                update(Job)
                .where(Job.id.in_(reported))
                .values(stage=stage, progress=max(0.0, min(1.0, fraction)), heartbeat_at=utcnow())
            )
            if details:
                for job in session.scalars(select(Job).where(Job.id.in_(reported))):
                    job.payload = {**job.payload, **details}
        return self.cancelled

    def only(self, job_ids: Sequence[str]) -> GroupProgress:
        """A reporter for a subset of the group (keeps what is known of their cancellation)."""
        subset = GroupProgress(self.zhiku, job_ids, self._min_interval, stopping=self.stopping)
        subset.cancelled = self.cancelled & set(job_ids)
        return subset


Task = Callable[[Zhiku, Job, JobContext], None]
GroupTask = Callable[[Zhiku, Sequence[Job], GroupProgress], Outcomes]
"""A task that runs several jobs of one kind and knowledge base together (e.g. ingestion, for full batches)."""


def _running(worker: str, now: dt.datetime) -> dict[str, Any]:
    """The column values of a job that ``worker`` claims at ``now``."""
    return {
        "status": JobStatus.running,
        "worker": worker,
        "attempts": Job.attempts + 1,
        "heartbeat_at": now,
        "started_at": now,
    }


WAIT_RECHECK = 1.0
"""Seconds between :meth:`JobRunner.wait_for`'s database checks while its own workers run (they also wake it)."""


class JobRunner:
    """Runs queued jobs on ``workers`` threads until stopped.

    ``tasks`` run the jobs of their kind one at a time; ``group_tasks`` run the queued jobs of their kind and one
    knowledge base together (see :meth:`claim_companions`). A job of a kind in neither table fails.
    """

    def __init__(
        self,
        zhiku: Zhiku,
        workers: int | None = None,
        poll_interval: float = 0.2,
        *,
        poll: bool = True,
        tasks: Mapping[str, Task],
        group_tasks: Mapping[str, GroupTask],
    ) -> None:
        self.zhiku = zhiku
        self.tasks = dict(tasks)
        self.group_tasks = dict(group_tasks)
        # poll=False: no polling threads, only the heartbeat (a Celery worker hands jobs to run_job instead)
        self.workers = (workers or zhiku.settings.ingest_workers) if poll else 0
        self.poll_interval = poll_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        # bumped whenever this runner settles jobs, so that wait_for wakes at once instead of polling the database
        self._settled = threading.Condition()
        self._generation = 0

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Requeue jobs interrupted by a dead process, then start the workers and the heartbeat."""
        if self._threads:
            return
        self._stop.clear()
        self.requeue_interrupted()
        if self.workers:
            self.zhiku.parsers.start()  # the parsing processes start while the model loads
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"zhiku-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._heartbeat, name="zhiku-job-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; running ones stop at their next progress report (within seconds: a parse is ended
        at once, an embedding call finishes) and go back to the queue, to resume at the next start."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def __enter__(self) -> JobRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def idle(self) -> bool:
        """No job running in this runner right now."""
        with self._busy_lock:
            return self._busy == 0

    # -- claiming and running -------------------------------------------------------------------------------
    def requeue_interrupted(self, older_than: float | None = None) -> int:
        """Put running jobs whose heartbeat is older than ``older_than`` seconds back in the queue.

        The interruption does not count as a failed attempt. The default threshold is ``job_stale_seconds``:
        a live runner beats every ``job_heartbeat_seconds``, so only a dead process's jobs get that old.
        """
        limit = self.zhiku.settings.job_stale_seconds if older_than is None else older_than
        cutoff = utcnow() - dt.timedelta(seconds=limit)
        with self.zhiku.db.session() as session:
            stale = list(
                session.scalars(
                    select(Job).where(
                        Job.status == JobStatus.running, (Job.heartbeat_at < cutoff) | (Job.heartbeat_at.is_(None))
                    )
                )
            )
            for job in stale:
                job.status, job.worker, job.run_after = JobStatus.queued, None, utcnow()
                job.attempts = max(0, job.attempts - 1)
                log.warning("job %s was interrupted (no heartbeat since %s); requeued", job.id, job.heartbeat_at)
        dispatch(self.zhiku, [job.id for job in stale])
        return len(stale)

    def claim(self, job_id: str | None = None) -> str | None:
        """Atomically take the oldest runnable job (or exactly ``job_id`` if it is runnable); return its id."""
        if job_id is not None:
            candidates = [job_id]
        else:
            with self.zhiku.db.session() as session:
                candidates = list(
                    session.scalars(
                        select(Job.id)
                        .where(Job.status == JobStatus.queued, Job.run_after <= utcnow())
                        .order_by(Job.created_at)
                        .limit(5)
                    )
                )
        for job_id in candidates:
            with self.zhiku.db.session() as session:
                now = utcnow()
                claimed = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.queued, Job.run_after <= now)
                    .values(_running(self.name, now))
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return job_id
        return None

    def claim_companions(self, job_id: str) -> list[str]:
        """Also claim queued jobs that can run together with the claimed job ``job_id``; return their ids.

        Only kinds with a group task have companions: jobs of the same kind and knowledge base, oldest first,
        up to ``ingest_batch_documents`` jobs and :data:`GROUP_BYTES` of source files in all, so that many
        small documents fill the model's batches instead of calling it once each.
        """
        limit = self.zhiku.settings.ingest_batch_documents - 1
        with self.zhiku.db.session() as session:
            lead = session.get_one(Job, job_id)
            if limit <= 0 or lead.kind not in self.group_tasks or lead.kb_id is None:
                return []
            lead_size = session.scalar(select(Document.size_bytes).where(Document.id == lead.document_id)) or 0
            candidates = session.execute(
                select(Job.id, Document.size_bytes)
                .join(Document, Document.id == Job.document_id)
                .where(Job.kind == lead.kind, Job.kb_id == lead.kb_id, Job.status == JobStatus.queued)
                .where(Job.run_after <= utcnow(), Job.id != job_id)
                .order_by(Job.created_at)
                .limit(limit)
            ).all()
        chosen, total = [], lead_size
        for candidate, size in candidates:
            if total + size > GROUP_BYTES:
                break
            chosen.append(candidate)
            total += size
        if not chosen:
            return []
        now = utcnow()
        with self.zhiku.db.session() as session:  # one conditional UPDATE: another runner may take some first
            return list(
                session.scalars(
                    update(Job)
                    .where(Job.id.in_(chosen), Job.status == JobStatus.queued, Job.run_after <= now)
                    .values(_running(self.name, now))
                    .returning(Job.id)
                    .execution_options(synchronize_session=False)
                )
            )

    def run_job(self, job_id: str) -> float | None:
        """Run one given job if it is runnable now (at-least-once delivery: a duplicate is a no-op).

        Returns the seconds until it becomes runnable when it is queued for later, else ``None``.
        """
        if self.claim(job_id) is not None:
            self._run_claimed(job_id)
            return None
        with self.zhiku.db.session() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.queued:
                return None
            return max(0.0, (job.run_after - utcnow()).total_seconds()) or 0.1

    def run_one(self) -> bool:
        """Claim and run one job in this thread; False when nothing was runnable."""
        job_id = self.claim()
        if job_id is None:
            return False
        self._run_claimed(job_id)
        return True

    def _run_claimed(self, job_id: str) -> None:
        with self._busy_lock:
            self._busy += 1
        try:
            companions = self.claim_companions(job_id)
        except Exception as exc:  # noqa: BLE001 - e.g. the database failed: the job learns why
            self._settle_all([job_id], exc)
            companions = None
        try:
            if companions is not None:
                self._execute(job_id, companions)
        finally:
            with self._busy_lock:
                self._busy -= 1
            with self._settled:
                self._generation += 1
                self._settled.notify_all()

    def _execute(self, job_id: str, companions: Sequence[str] = ()) -> None:
        """Run a claimed job (with its claimed companions, as one group) and settle each job's outcome."""
        job_ids = [job_id, *companions]
        with self.zhiku.db.session() as session:
            found = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        job_ids = [one for one in job_ids if one in found]  # a job is deleted with its document
        if not job_ids:
            return
        jobs = [found[one] for one in job_ids]
        lead = jobs[0]
        outcomes: Outcomes
        try:
            if (group_task := self.group_tasks.get(lead.kind)) is not None:
                outcomes = group_task(self.zhiku, jobs, GroupProgress(self.zhiku, job_ids, stopping=self._stop))
            elif (task := self.tasks.get(lead.kind)) is None:
                outcomes = {lead.id: DocumentError(f"unknown job kind {lead.kind!r}")}
            else:
                task(self.zhiku, lead, JobContext(self.zhiku, lead.id, stopping=self._stop))
                outcomes = {lead.id: None}
        except Exception as exc:  # noqa: BLE001 - the task (or the group as a whole) failed: every job learns why
            outcomes = dict.fromkeys(job_ids, exc)
        missing = RuntimeError("the task reported no outcome for this job")
        self._finish_succeeded([one for one in job_ids if one in outcomes and outcomes[one] is None])
        for one in job_ids:
            if (outcome := outcomes.get(one, missing)) is not None:
                self._settle(one, outcome)

    def _settle_all(self, job_ids: Sequence[str], outcome: BaseException) -> None:
        """Settle claimed jobs that could not run; if even that fails, their heartbeat stops and they resume."""
        for one in job_ids:
            try:
                self._settle(one, outcome)
            except Exception:
                log.exception("could not settle job %s", one)

    def _settle(self, job_id: str, outcome: BaseException) -> None:
        """Turn the exception that ended a job into its next state: cancelled, queued again, or failed.

        Only transient failures (:func:`is_transient`) are retried; the document's own faults and every other
        error (a bug, a missing package) fail the job at once with the reason.
        """
        if isinstance(outcome, JobCancelledError):
            self._finish(job_id, JobStatus.cancelled, "cancelled")
        elif isinstance(outcome, JobInterruptedError):
            self._defer(job_id, JobDeferredError("interrupted: the worker stopped; resumes at its next start", 0.0))
        elif isinstance(outcome, JobDeferredError):
            self._defer(job_id, outcome)
        elif isinstance(outcome, DocumentError):  # the input is at fault: retrying cannot help
            self._finish(job_id, JobStatus.failed, outcome.message)
        elif is_transient(outcome):
            log.warning("job %s failed (will retry): %s", job_id, describe_failure(outcome))
            self._retry_or_fail(job_id, describe_failure(outcome))
        else:  # a traceback only for what is not one of zhiku's own errors (those say all there is to say)
            log.error(
                "job %s failed: %s",
                job_id,
                describe_failure(outcome),
                exc_info=None if isinstance(outcome, ZhikuError) else outcome,
            )
            self._finish(job_id, JobStatus.failed, describe_failure(outcome))

    def _finish_succeeded(self, job_ids: list[str]) -> None:
        """Mark jobs succeeded, all in one statement."""
        if job_ids:
            with self.zhiku.db.session() as session:
                session.execute(
                    update(Job)
                    .where(Job.id.in_(job_ids))
                    .values(
                        status=JobStatus.succeeded,
                        error=None,
                        finished_at=utcnow(),  # `worker` stays: the runner that finished the job
                        progress=1.0,
                        stage="done",
                    )
                    .execution_options(synchronize_session=False)
                )

    def _finish(self, job_id: str, status: JobStatus, error: str | None) -> None:
        with self.zhiku.db.session() as session:
            job = session.get_one(Job, job_id)
            job.status, job.error, job.finished_at = status, error, utcnow()  # `worker` stays: who finished it
            if status == JobStatus.succeeded:
                job.progress, job.stage = 1.0, "done"
            elif job.document_id:
                _mark_document_after_failure(session, job.document_id, error or status.value)

    def _defer(self, job_id: str, deferred: JobDeferredError) -> None:
        with self.zhiku.db.session() as session:
            job = session.get_one(Job, job_id)
            job.status, job.worker, job.stage = JobStatus.queued, None, "waiting"
            job.attempts = max(0, job.attempts - 1)  # waiting is not a failed attempt
            job.error = deferred.reason
            job.run_after = utcnow() + dt.timedelta(seconds=deferred.delay)
        dispatch(self.zhiku, [job_id], countdown=deferred.delay)

    def _retry_or_fail(self, job_id: str, error: str) -> None:
        with self.zhiku.db.session() as session:
            job = session.get_one(Job, job_id)
            if job.attempts >= job.max_attempts:
                job.status, job.error, job.finished_at = JobStatus.failed, error, utcnow()
                if job.document_id:
                    _mark_document_after_failure(
                        session, job.document_id, f"{error} (gave up after {job.attempts} attempts)"
                    )
                return
            delay = self.zhiku.settings.job_retry_backoff * 2 ** (job.attempts - 1)
            job.status, job.error, job.worker = JobStatus.queued, error, None
            job.run_after = utcnow() + dt.timedelta(seconds=delay)
        dispatch(self.zhiku, [job_id], countdown=delay)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_one():
                    self._stop.wait(self.poll_interval)
            except Exception:  # a DB hiccup must not kill the worker thread
                log.exception("job worker error")
                self._stop.wait(1.0)

    def _heartbeat(self) -> None:
        interval = self.zhiku.settings.job_heartbeat_seconds
        while not self._stop.wait(interval):
            try:
                with self.zhiku.db.session() as session:
                    session.execute(
                        update(Job)
                        .where(Job.status == JobStatus.running, Job.worker == self.name)
                        .values(heartbeat_at=utcnow())
                    )
                self.requeue_interrupted()
                if self.zhiku.settings.job_backend == "celery":
                    redispatch_forgotten(self.zhiku)
            except Exception:
                log.exception("job heartbeat error")

    def wait_for(
        self, job_ids: list[str], timeout: float | None = None, on_poll: Callable[[], None] | None = None
    ) -> None:
        """Block until every job in ``job_ids`` has finished (or ``timeout`` seconds pass).

        Looks in the database each time this runner settles jobs, and every ``poll_interval`` seconds while its
        workers are not running (jobs run by another process), at least every :data:`WAIT_RECHECK` seconds
        otherwise: frequent status queries would take CPU time from the model on a small machine.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = set(job_ids)
        while pending:
            with self._settled:
                seen = self._generation
            with self.zhiku.db.session() as session:
                done = set(session.scalars(select(Job.id).where(Job.id.in_(pending), Job.status.in_(FINISHED))))
            pending -= done
            if on_poll is not None:
                on_poll()
            if not pending or (deadline is not None and time.monotonic() > deadline):
                return
            interval = max(self.poll_interval, WAIT_RECHECK) if self._threads else self.poll_interval
            if deadline is not None:
                interval = min(interval, max(0.0, deadline - time.monotonic()))
            with self._settled:
                if self._generation == seen:  # nothing settled since the query: sleep until something does
                    self._settled.wait(interval)


def _mark_document_after_failure(session: Any, document_id: str, error: str) -> None:
    """A failed or cancelled ingestion leaves the previous version searchable, or marks the document failed."""
    document = session.get(Document, document_id)
    if document is None:
        return
    if document.version > 0:
        document.status, document.error = DocumentStatus.ready, f"update not applied: {error}"
    else:
        document.status, document.error = DocumentStatus.failed, error
    document.pending_version = document.pending_hash = None


def cancel_job(zhiku: Zhiku, job_id: str) -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next progress report."""
    with zhiku.db.session() as session:
        job = find_job(session, job_id)
        if job.status == JobStatus.queued:
            job.status, job.error, job.finished_at = JobStatus.cancelled, "cancelled", utcnow()
            if job.document_id:
                _mark_document_after_failure(session, job.document_id, "cancelled")
        elif job.status == JobStatus.running:
            job.cancel_requested = True
        return job


def retry_job(zhiku: Zhiku, job_id: str) -> Job:
    """Queue a failed or cancelled ingestion again, from scratch."""
    with zhiku.db.session() as session:
        job = find_job(session, job_id)
        if job.status not in (JobStatus.failed, JobStatus.cancelled):
            raise ConflictError(f"job {job.id} is {job.status}; only failed or cancelled jobs can be retried")
        if job.document_id:
            document = session.get(Document, job.document_id)
            if document is None:
                raise NotFoundError(f"the document of job {job.id} was deleted")
            document.pending_version = job.payload.get("version", document.version + 1)
            document.pending_hash = job.payload.get("sha256", document.content_hash)
            document.status, document.error = DocumentStatus.queued, None
        job.status, job.error, job.attempts, job.cancel_requested = JobStatus.queued, None, 0, False
        job.run_after, job.finished_at, job.progress, job.stage = utcnow(), None, 0.0, "queued"
    dispatch(zhiku, [job.id])
    return job


def find_job(session: Any, job_id: str) -> Job:
    """The job that ``job_id`` names: its id or a unique prefix of it (see :func:`~zhiku.storage.lookup.find_by_id`)."""
    job: Job = find_by_id(session, select(Job), Job.id, job_id, what="job")
    return job
