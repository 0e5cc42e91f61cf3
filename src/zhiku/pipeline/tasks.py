"""The task table: which task runs the jobs of each kind (:mod:`zhiku.jobs.kinds`), handed to the job runners.

``ingest_document`` jobs run in groups (see :mod:`zhiku.pipeline.ingest`), the knowledge-base re-index alone
(see :mod:`zhiku.pipeline.reindex`). :func:`job_runner` builds a runner with this table.
"""

from __future__ import annotations

from zhiku.core import Zhiku
from zhiku.jobs.kinds import INGEST_KIND, REINDEX_KIND
from zhiku.jobs.runner import GroupTask, JobRunner, Task
from zhiku.pipeline.ingest import ingest_documents
from zhiku.pipeline.reindex import reindex_kb

TASKS: dict[str, Task] = {REINDEX_KIND: reindex_kb}
"""Kinds whose jobs run one at a time."""

GROUP_TASKS: dict[str, GroupTask] = {INGEST_KIND: ingest_documents}
"""Kinds whose queued jobs of one knowledge base a runner claims and runs together."""


def job_runner(zhiku: Zhiku, workers: int | None = None, poll_interval: float = 0.2, *, poll: bool = True) -> JobRunner:
    """A :class:`~zhiku.jobs.runner.JobRunner` that runs the pipeline's jobs (:data:`TASKS`, :data:`GROUP_TASKS`)."""
    return JobRunner(zhiku, workers, poll_interval, poll=poll, tasks=TASKS, group_tasks=GROUP_TASKS)
