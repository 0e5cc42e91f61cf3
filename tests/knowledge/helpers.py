"""What the knowledge-service tests share: XQuAD paragraphs from the shared data, and running the queued jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from zhiku.core import Zhiku
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import Job


def xquad_rows(evaldata: Path, language: str) -> Iterator[dict[str, str]]:
    """The rows (``_id``, ``title``, ``text``) of the XQuAD corpus in ``language`` (``en`` or ``zh``)."""
    with (evaldata / "retrieval" / f"xquad-{language}" / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def run_queued_jobs(zhiku: Zhiku, timeout: float = 600) -> None:
    """Run every queued (or interrupted) job with one worker until all are done."""
    with zhiku.db.session() as session:
        ids = list(session.scalars(select(Job.id).where(Job.status.in_(["queued", "running"]))))
    with job_runner(zhiku, workers=1, poll_interval=0.05) as runner:
        runner.wait_for(ids, timeout=timeout)
