"""The job kinds the runners know: ``ingest_document`` (run in groups, see :mod:`zhiku.jobs.ingest`) and the
knowledge-base re-index (run alone, see :mod:`zhiku.jobs.reindex`)."""

from __future__ import annotations

from zhiku.jobs.ingest import ingest_documents
from zhiku.jobs.reindex import REINDEX_KIND, reindex_kb
from zhiku.jobs.runner import GroupTask, Task
from zhiku.knowledge import INGEST_KIND

TASKS: dict[str, Task] = {REINDEX_KIND: reindex_kb}
"""Kinds whose jobs run one at a time."""

GROUP_TASKS: dict[str, GroupTask] = {INGEST_KIND: ingest_documents}
"""Kinds whose queued jobs of one knowledge base a runner claims and runs together."""
