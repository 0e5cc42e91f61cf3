"""`zhiku jobs`: list, show, cancel and retry background jobs; the progress bar of commands that wait for jobs."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from rich.markup import escape
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

from zhiku.cli.common import err, find_server, open_zhiku, out
from zhiku.client import Client
from zhiku.core import Zhiku
from zhiku.jobs.runner import FINISHED, JobRunner, cancel_job, retry_job
from zhiku.knowledge.jobs import JobsProgress, details_progress, get_job, job_progress, list_jobs
from zhiku.pipeline.tasks import job_runner

jobs_app = typer.Typer(help="List, show, cancel and retry background jobs.", no_args_is_help=True)


def progress_bar() -> Progress:
    """The progress bar of commands that wait for jobs (on stderr); tasks take a ``detail`` field."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=err)


def _show(progress: Progress, task: TaskID, started: float, state: JobsProgress) -> None:
    rate = state.chunks / max(1e-6, time.monotonic() - started)
    detail = f"{state.chunks} chunks, {rate:.1f} chunks/s"
    if state.ocr_pages:  # scans: their OCR is the slow stage, so show it
        detail = f"OCR {state.ocr_pages_done}/{state.ocr_pages} pages, {detail}"
    progress.update(task, completed=state.done, detail=detail)


def run_with_progress(zhiku: Zhiku, runner: JobRunner, job_ids: list[str]) -> None:
    """Show a progress bar until ``job_ids`` finish; ``runner`` must be started."""
    started = time.monotonic()
    with progress_bar() as progress:
        task: TaskID = progress.add_task("documents", total=len(job_ids), detail="")

        def poll() -> None:
            _show(progress, task, started, job_progress(zhiku, job_ids, FINISHED))

        runner.wait_for(job_ids, on_poll=poll)
        poll()


def follow_on_server(server: Client, kb_id: str, job_ids: list[str]) -> None:
    """Show the same progress bar as :func:`run_with_progress` until ``job_ids`` (of knowledge base ``kb_id``) have
    finished on ``server``, from its live job events."""
    if not job_ids:
        return
    started = time.monotonic()
    wanted = set(job_ids)
    jobs: dict[str, dict[str, Any]] = {}

    def update(progress: Progress, task: TaskID) -> bool:
        done = sum(1 for job in jobs.values() if job["status"] in FINISHED)
        _show(progress, task, started, details_progress(done, [job.get("details") or {} for job in jobs.values()]))
        return done == len(wanted)

    with progress_bar() as progress:
        task: TaskID = progress.add_task("documents", total=len(job_ids), detail="")
        # a stream sends the jobs that are unfinished or finished in the last 30 s, the list all the others: a job
        # that finishes between the two is in the stream
        jobs.update((job["id"], job) for job in server.list_jobs(kb_id=kb_id, limit=1000) if job["id"] in wanted)
        if update(progress, task):
            return
        events = server.job_events(kb_id)
        try:
            for job in events:
                if job["id"] in wanted:
                    jobs[job["id"]] = job
                    if update(progress, task):
                        return
        finally:
            events.close()


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option("--status", help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
) -> None:
    """List recent jobs."""
    server = find_server()
    if server is not None:
        with server:
            listed = server.list_jobs(status, limit)
            names: dict[str, str] = {}
            for kb_id in {job["knowledge_base_id"] for job in listed if job["document_id"]}:
                names.update((d["id"], d["filename"]) for d in server.list_documents(kb_id))
        _print_jobs(
            (
                job["id"],
                job["kind"],
                names.get(job["document_id"] or "", ""),
                job["status"],
                job["stage"],
                job["progress"],
                job["attempts"],
                job["max_attempts"],
                job["error"],
            )
            for job in listed
        )
        return
    with open_zhiku() as zhiku:
        rows = list_jobs(zhiku, status, limit)
    _print_jobs(
        (
            job.id,
            job.kind,
            filename or "",
            job.status,
            job.stage,
            job.progress,
            job.attempts,
            job.max_attempts,
            job.error,
        )
        for job, filename in rows
    )


def _print_jobs(rows: Iterable[tuple[str, str, str, str, str, float, int, int, str | None]]) -> None:
    table = Table(title="jobs")
    for column in ("id", "kind", "file", "status", "stage", "progress", "attempts", "error"):
        table.add_column(column, overflow="fold")
    for job_id, kind, filename, status, stage, progress, attempts, max_attempts, error in rows:
        table.add_row(
            job_id[:12],
            kind,
            escape(filename or ""),
            status,
            stage,
            f"{progress:.0%}",
            f"{attempts}/{max_attempts}",
            escape(error or ""),
        )
    out.print(table)


SHOWN = (
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
)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")]) -> None:
    """Show one job in full."""
    server = find_server()
    if server is not None:
        with server:
            found = server.get_job(job_id)
        fields = found | {"kb_id": found["knowledge_base_id"], "payload": found["details"], "heartbeat_at": None}
        for name in ("created_at", "started_at", "finished_at"):
            fields[name] = dt.datetime.fromisoformat(fields[name]) if fields[name] else None
        _print_job(found["id"], [(name, fields[name]) for name in SHOWN])
        return
    with open_zhiku() as zhiku:
        job = get_job(zhiku, job_id)
    _print_job(job.id, [(name, getattr(job, name)) for name in SHOWN])


def _print_job(job_id: str, rows: Iterable[tuple[str, object]]) -> None:
    table = Table(show_header=False, title=f"job {job_id}")
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")]) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    server = find_server()
    if server is not None:
        with server:
            cancelled = server.cancel_job(job_id)
        # the API has no cancel_requested: a running job it asked to stop is still running
        requested = cancelled["status"] == "running"
        out.print(f"job {cancelled['id']}: {cancelled['status']}{' (cancel requested)' if requested else ''}")
        return
    with open_zhiku() as zhiku:
        job = cancel_job(zhiku, job_id)
    out.print(f"job {job.id}: {job.status}{' (cancel requested)' if job.cancel_requested else ''}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run it now and show progress.")] = True,
) -> None:
    """Queue a failed or cancelled job again."""
    server = find_server()
    if server is not None:
        with server:
            queued = server.retry_job(job_id)
            if wait and queued["knowledge_base_id"]:
                follow_on_server(server, queued["knowledge_base_id"], [queued["id"]])
            final = server.get_job(queued["id"])
        out.print(f"job {final['id']}: {final['status']}{' — ' + final['error'] if final['error'] else ''}")
        return
    with open_zhiku() as zhiku:
        job = retry_job(zhiku, job_id)
        if wait:
            with job_runner(zhiku) as runner:
                run_with_progress(zhiku, runner, [job.id])
        final_job = get_job(zhiku, job.id)
        out.print(f"job {final_job.id}: {final_job.status}{' — ' + final_job.error if final_job.error else ''}")
