"""`zhiku jobs`: list, show, cancel and retry background jobs; the progress bar of commands that wait for jobs."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from zhiku.cli.common import err, open_zhiku, out
from zhiku.core import Zhiku
from zhiku.jobs.runner import FINISHED, JobRunner, cancel_job, retry_job
from zhiku.knowledge.jobs import get_job, job_progress, list_jobs
from zhiku.pipeline.tasks import job_runner

jobs_app = typer.Typer(help="List, show, cancel and retry background jobs.", no_args_is_help=True)


def run_with_progress(zhiku: Zhiku, runner: JobRunner, job_ids: list[str]) -> None:
    """Show a progress bar until ``job_ids`` finish; ``runner`` must be started."""
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task: TaskID = progress.add_task("documents", total=len(job_ids), detail="")

        def poll() -> None:
            done, chunks = job_progress(zhiku, job_ids, FINISHED)
            rate = chunks / max(1e-6, time.monotonic() - started)
            progress.update(task, completed=done, detail=f"{chunks} chunks, {rate:.1f} chunks/s")

        runner.wait_for(job_ids, on_poll=poll)
        poll()


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option("--status", help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
) -> None:
    """List recent jobs."""
    with open_zhiku() as zhiku:
        rows = list_jobs(zhiku, status, limit)
        table = Table(title="jobs")
        for column in ("id", "kind", "file", "status", "stage", "progress", "attempts", "error"):
            table.add_column(column, overflow="fold")
        for job, filename in rows:
            table.add_row(
                job.id[:12],
                job.kind,
                filename or "",
                job.status,
                job.stage,
                f"{job.progress:.0%}",
                f"{job.attempts}/{job.max_attempts}",
                job.error or "",
            )
        out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")]) -> None:
    """Show one job in full."""
    with open_zhiku() as zhiku:
        job = get_job(zhiku, job_id)
        table = Table(show_header=False, title=f"job {job.id}")
        for column in (
            "kind",
            "status",
            "stage",
            "progress",
            "attempts",
            "max_attempts",
            "error",
            "document_id",
            "kb_id",
            "payload",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ):
            table.add_row(column, str(getattr(job, column)))
        out.print(table)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")]) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    with open_zhiku() as zhiku:
        job = cancel_job(zhiku, job_id)
    out.print(f"job {job.id}: {job.status}{' (cancel requested)' if job.cancel_requested else ''}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run it now and show progress.")] = True,
) -> None:
    """Queue a failed or cancelled job again."""
    with open_zhiku() as zhiku:
        job = retry_job(zhiku, job_id)
        if wait:
            with job_runner(zhiku) as runner:
                run_with_progress(zhiku, runner, [job.id])
        final = get_job(zhiku, job.id)
        out.print(f"job {final.id}: {final.status}{' — ' + final.error if final.error else ''}")
