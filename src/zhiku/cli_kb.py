"""CLI commands for knowledge bases, ingestion, documents and jobs (registered by ``zhiku.cli``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
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
from sqlalchemy import func, select

from zhiku.config import get_settings
from zhiku.core import Zhiku
from zhiku.search.options import MAX_TOP_K, TOP_K

if TYPE_CHECKING:
    from zhiku.jobs.runner import JobRunner

kb_app = typer.Typer(help="Create, list, show and delete knowledge bases.", no_args_is_help=True)
docs_app = typer.Typer(help="List, label and delete documents of a knowledge base.", no_args_is_help=True)
jobs_app = typer.Typer(help="List, show, cancel and retry background jobs.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _open() -> Zhiku:
    from zhiku.cli import _quiet_libraries

    _quiet_libraries()
    return Zhiku(get_settings())


@kb_app.command("create")
def kb_create(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Embedding model (default: settings).")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="Matryoshka dimension (default: native).")] = None,
    index_dim: Annotated[
        int | None, typer.Option("--index-dim", help="Matryoshka two-stage: index this prefix, rescore at --dim.")
    ] = None,
    instruction: Annotated[str | None, typer.Option("--instruction", "-i", help="Query task preset or text.")] = None,
    chunk_tokens: Annotated[int | None, typer.Option("--chunk-tokens", help="Chunk size in tokens.")] = None,
    overlap: Annotated[int | None, typer.Option("--overlap", help="Chunk overlap in tokens.")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
) -> None:
    """Create a knowledge base (its model, dimension and instruction are fixed for its lifetime)."""
    from zhiku.knowledge import create_knowledge_base

    zhiku = _open()
    try:
        kb = create_knowledge_base(
            zhiku, name, model=model, dimension=dim, index_dimension=index_dim, instruction=instruction,
            chunk_tokens=chunk_tokens,
            chunk_overlap=overlap, description=description,
        )  # fmt: skip
    finally:
        zhiku.close()
    out.print(
        f"created knowledge base [bold]{kb.name}[/] ({kb.id}): {kb.embedding_model}, {kb.dimension} dims, "
        f"chunks of {kb.chunk_tokens} tokens (overlap {kb.chunk_overlap})"
    )


@kb_app.command("list")
def kb_list() -> None:
    """List knowledge bases with their document and chunk counts."""
    from zhiku.knowledge import knowledge_base_stats, list_knowledge_bases

    zhiku = _open()
    try:
        table = Table(title="knowledge bases")
        for column in ("name", "model", "dims", "documents", "ready", "chunks", "created"):
            table.add_column(column)
        for kb in list_knowledge_bases(zhiku):
            stats = knowledge_base_stats(zhiku, kb)
            table.add_row(
                kb.name, kb.embedding_model, str(kb.dimension), str(sum(stats.documents.values())),
                str(stats.documents.get("ready", 0)), str(stats.chunks), kb.created_at.strftime("%Y-%m-%d %H:%M"),
            )  # fmt: skip
        out.print(table)
    finally:
        zhiku.close()


@kb_app.command("show")
def kb_show(name: Annotated[str, typer.Argument(help="Knowledge base name or id.")]) -> None:
    """Show a knowledge base's settings and counts."""
    from zhiku.knowledge import get_knowledge_base, knowledge_base_stats

    zhiku = _open()
    try:
        kb = get_knowledge_base(zhiku, name)
        stats = knowledge_base_stats(zhiku, kb)
        vectors = zhiku.vectors.count(kb.collection)
    finally:
        zhiku.close()
    documents = ", ".join(f"{k}: {v}" for k, v in stats.documents.items()) or "0"
    table = Table(show_header=False, title=f"knowledge base {kb.name}")
    for key, value in [
        ("id", kb.id), ("model", kb.embedding_model), ("dimension", kb.dimension),
        ("index dimension", kb.index_dimension or "(full)"),
        ("instruction", kb.instruction or "(model default)"), ("chunk tokens", kb.chunk_tokens),
        ("chunk overlap", kb.chunk_overlap), ("documents", documents), ("chunks", stats.chunks),
        ("vectors", vectors), ("created", kb.created_at.isoformat(timespec="seconds")),
    ]:  # fmt: skip
        table.add_row(key, str(value))
    out.print(table)


@kb_app.command("delete")
def kb_delete(
    name: Annotated[str, typer.Argument(help="Knowledge base name or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a knowledge base with all its documents, chunks and vectors."""
    from zhiku.knowledge import delete_knowledge_base, get_knowledge_base

    zhiku = _open()
    try:
        kb = get_knowledge_base(zhiku, name)
        if not yes and not typer.confirm(f"Delete knowledge base {kb.name!r} and everything in it?"):
            raise typer.Exit(1)
        delete_knowledge_base(zhiku, kb)
    finally:
        zhiku.close()
    out.print(f"deleted knowledge base {kb.name}")


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursively; .gitignore respected).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    include: Annotated[list[str] | None, typer.Option("--include", help="Only files matching this glob.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Skip files matching this glob.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run the jobs now and show progress.")] = True,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag every file with this (repeatable).")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Set metadata KEY=VALUE on every file (repeatable).")
    ] = None,
) -> None:
    """Ingest files into a knowledge base with a progress bar, then print what happened to each file."""
    from zhiku.ingest.sources import SourceProblem, iter_sources
    from zhiku.knowledge import Labels, Registration, get_knowledge_base, group_size, register_files
    from zhiku.pipeline.tasks import job_runner
    from zhiku.search.filters import normalize_tag

    labels = Labels(tags=[normalize_tag(t) for t in tag] if tag else None, metadata=_parse_meta(meta) if meta else None)
    zhiku = _open()
    runner = job_runner(zhiku)
    try:
        kb = get_knowledge_base(zhiku, kb_name)
        if wait and zhiku.settings.job_backend == "embedded":
            runner.start()  # documents are ingested while the rest are still being registered
        registrations: list[Registration] = []
        batch: list[Path] = []  # registered a group at a time: one commit per group, and workers start early
        for item in iter_sources(paths, include or (), exclude or ()):
            if isinstance(item, SourceProblem):
                registrations.append(Registration(str(item.path), "failed", message=item.message))
                continue
            batch.append(item.path)
            if len(batch) >= group_size(zhiku, len(registrations)):
                registrations += register_files(zhiku, kb, batch, labels=labels)
                batch = []
        registrations += register_files(zhiku, kb, batch, labels=labels)
        job_ids = [r.job_id for r in registrations if r.job_id]
        if wait:
            job_ids += _unfinished_jobs(zhiku, kb.id, exclude=set(job_ids))  # e.g. interrupted by a crash
            _run_with_progress(zhiku, runner, job_ids)
            runner.stop()
            if job_ids and zhiku.settings.job_backend == "embedded":  # workers own the store otherwise
                zhiku.vectors.optimize(kb.collection)
        _print_outcomes(zhiku, registrations, waited=wait)
    finally:
        runner.stop()
        zhiku.close()


def _unfinished_jobs(zhiku: Zhiku, kb_id: str, exclude: set[str]) -> list[str]:
    from zhiku.storage.models import Job, JobStatus

    with zhiku.db.session() as session:
        rows = session.scalars(
            select(Job.id).where(Job.kb_id == kb_id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
        return [job_id for job_id in rows if job_id not in exclude]


def _run_with_progress(zhiku: Zhiku, runner: JobRunner, job_ids: list[str]) -> None:
    """Show a progress bar until ``job_ids`` finish; ``runner`` must be started."""
    from zhiku.jobs.runner import FINISHED
    from zhiku.storage.models import Job

    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err) as progress:
        task: TaskID = progress.add_task("documents", total=len(job_ids), detail="")

        def poll() -> None:
            with zhiku.db.session() as session:
                done = session.scalar(
                    select(func.count()).select_from(Job).where(Job.id.in_(job_ids), Job.status.in_(FINISHED))
                )
                payloads = session.scalars(select(Job.payload).where(Job.id.in_(job_ids)))
                chunks = sum(int(p.get("embedded", 0)) for p in payloads)
            rate = chunks / max(1e-6, time.monotonic() - started)
            progress.update(task, completed=done or 0, detail=f"{chunks} chunks, {rate:.1f} chunks/s")

        runner.wait_for(job_ids, on_poll=poll)
        poll()


def _print_outcomes(zhiku: Zhiku, registrations: Sequence[object], *, waited: bool) -> None:
    from zhiku.knowledge import Registration
    from zhiku.storage.models import Document

    table = Table(title="ingestion")
    for column in ("file", "status", "chunks", "pages", "detail"):
        table.add_column(column, overflow="fold")
    counts: dict[str, int] = {}
    with zhiku.db.session() as session:
        for item in registrations:
            assert isinstance(item, Registration)
            status, chunks, pages, detail = item.outcome, "", "", item.message
            if item.document_id:
                document = session.get(Document, item.document_id)
                if document is not None and (waited or item.outcome != "queued"):
                    status = document.status if item.outcome == "queued" else item.outcome
                    chunks, pages = str(document.chunk_count or ""), str(document.pages or "")
                    detail = document.error or item.message or "; ".join(document.warnings[:2])
            counts[status] = counts.get(status, 0) + 1
            style = {"ready": "green", "failed": "red", "duplicate": "yellow"}.get(status, "")
            table.add_row(Path(item.source).name, f"[{style}]{status}[/]" if style else status, chunks, pages, detail)
    out.print(table)
    out.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


@docs_app.command("list")
def docs_list(kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")]) -> None:
    """List a knowledge base's documents."""
    from zhiku.knowledge import get_knowledge_base, list_documents

    zhiku = _open()
    try:
        kb = get_knowledge_base(zhiku, kb_name)
        table = Table(title=f"documents of {kb.name}")
        for column in ("id", "file", "status", "version", "pages", "chunks", "type", "tags", "metadata", "error"):
            table.add_column(column, overflow="fold")
        for d in list_documents(zhiku, kb):
            meta = ", ".join(f"{k}={v}" for k, v in sorted(d.meta.items()))
            table.add_row(
                d.id[:12], d.filename, d.status, str(d.version), str(d.pages or ""), str(d.chunk_count),
                d.mime_type or "", ", ".join(d.tags), meta, d.error or "",
            )  # fmt: skip
        out.print(table)
    finally:
        zhiku.close()


@docs_app.command("label")
def docs_label(
    document_id: Annotated[str, typer.Argument(help="Document id (or a unique prefix).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Add this tag (repeatable).")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove this tag (repeatable).")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Set metadata KEY=VALUE (repeatable).")] = None,
    unset: Annotated[list[str] | None, typer.Option("--unset", help="Remove this metadata key.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="The document's date (ISO 8601).")] = None,
) -> None:
    """Change a document's tags, metadata or date (used by search filters; no re-indexing needed)."""
    from zhiku.knowledge import get_document, get_knowledge_base, label_document
    from zhiku.search.filters import parse_date

    metadata = _parse_meta(meta or [])
    when = parse_date(date, param="date") if date else None
    zhiku = _open()
    try:
        kb = get_knowledge_base(zhiku, kb_name)
        document = label_document(
            zhiku, get_document(zhiku, kb, document_id), add_tags=tag or (), remove_tags=untag or (),
            set_metadata=metadata, unset_metadata=unset or (), document_date=when,
        )  # fmt: skip
    finally:
        zhiku.close()
    meta_text = ", ".join(f"{k}={v}" for k, v in sorted(document.meta.items()))
    out.print(f"{document.filename}: tags [{', '.join(document.tags)}], metadata {{{meta_text}}}", markup=False)


def _parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    from zhiku.errors import InvalidInputError
    from zhiku.search.filters import check_meta_key

    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInputError(f"--meta {pair!r}: expected KEY=VALUE", param="meta")
        metadata[check_meta_key(key.strip())] = value.strip()
    return metadata


@docs_app.command("delete")
def docs_delete(
    document_id: Annotated[str, typer.Argument(help="Document id (or a unique prefix).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
) -> None:
    """Delete a document, its chunks and vectors."""
    from zhiku.knowledge import delete_document, get_document, get_knowledge_base

    zhiku = _open()
    try:
        kb = get_knowledge_base(zhiku, kb_name)
        document = get_document(zhiku, kb, document_id)
        delete_document(zhiku, kb, document)
    finally:
        zhiku.close()
    out.print(f"deleted {document.filename} ({document.id})")


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option("--status", help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
) -> None:
    """List recent jobs."""
    from zhiku.storage.models import Document, Job

    zhiku = _open()
    try:
        with zhiku.db.session() as session:
            query = select(Job, Document.filename).outerjoin(Document, Job.document_id == Document.id)
            if status:
                query = query.where(Job.status == status)
            rows = session.execute(query.order_by(Job.created_at.desc()).limit(limit)).all()
        table = Table(title="jobs")
        for column in ("id", "kind", "file", "status", "stage", "progress", "attempts", "error"):
            table.add_column(column, overflow="fold")
        for job, filename in rows:
            table.add_row(
                job.id[:12], job.kind, filename or "", job.status, job.stage, f"{job.progress:.0%}",
                f"{job.attempts}/{job.max_attempts}", job.error or "",
            )  # fmt: skip
        out.print(table)
    finally:
        zhiku.close()


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")]) -> None:
    """Show one job in full."""
    from zhiku.jobs.runner import find_job

    zhiku = _open()
    try:
        with zhiku.db.session() as session:
            job = find_job(session, job_id)
        table = Table(show_header=False, title=f"job {job.id}")
        for column in ("kind", "status", "stage", "progress", "attempts", "max_attempts", "error", "document_id",
                       "kb_id", "payload", "created_at", "started_at", "heartbeat_at", "finished_at"):  # fmt: skip
            table.add_row(column, str(getattr(job, column)))
        out.print(table)
    finally:
        zhiku.close()


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")]) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    from zhiku.jobs.runner import cancel_job

    zhiku = _open()
    try:
        job = cancel_job(zhiku, job_id)
    finally:
        zhiku.close()
    out.print(f"job {job.id}: {job.status}{' (cancel requested)' if job.cancel_requested else ''}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help="Job id or unique prefix.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run it now and show progress.")] = True,
) -> None:
    """Queue a failed or cancelled job again."""
    from zhiku.jobs.runner import retry_job
    from zhiku.pipeline.tasks import job_runner

    zhiku = _open()
    try:
        job = retry_job(zhiku, job_id)
        if wait:
            with job_runner(zhiku) as runner:
                _run_with_progress(zhiku, runner, [job.id])
        with zhiku.db.session() as session:
            from zhiku.storage.models import Job

            final = session.get_one(Job, job.id)
        out.print(f"job {final.id}: {final.status}{' — ' + final.error if final.error else ''}")
    finally:
        zhiku.close()


def search_command(
    query: Annotated[str, typer.Argument(help="What to look for, in any language.")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    mode: Annotated[str, typer.Option("--mode", help="dense, lexical or hybrid.")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", "-k", help=f"Number of hits (1 to {MAX_TOP_K}).")] = TOP_K,
    document: Annotated[
        list[str] | None, typer.Option("--document", "-d", help="Only these document ids (repeatable).")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            "-f",
            help="tag=NAME (tag=a|b: any), KEY=VALUE (metadata), date>=2024-01-01, date<2025-01-01, "
            "document=FILE-OR-ID, type=pdf. Repeatable; all must hold.",
        ),
    ] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", help="Drop hits scoring below this.")] = None,
    neighbours: Annotated[int, typer.Option("--neighbours", help="Add N chunks of context each side.")] = 0,
    rerank: Annotated[
        str | None, typer.Option("--rerank", help="Reorder the top 30 with this reranker (name or folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search a knowledge base; hits carry document, page span, offsets, highlighted passage and scores."""
    import json
    from dataclasses import asdict

    from rich.markup import escape

    from zhiku.knowledge import get_knowledge_base
    from zhiku.search.filters import parse_filters
    from zhiku.search.highlight import mark
    from zhiku.search.options import SearchOptions
    from zhiku.search.retrieve import search

    document_filter = parse_filters(filters or [])
    zhiku = _open()
    try:
        kb = get_knowledge_base(zhiku, kb_name)
        options = SearchOptions(
            mode=mode,  # type: ignore[arg-type]
            top_k=top_k,
            document_ids=document,
            filter=document_filter,
            min_score=min_score,
            neighbours=neighbours,
            rerank=rerank,
        )
        hits = search(zhiku, kb, query, options)
    finally:
        zhiku.close()
    if as_json:
        typer.echo(json.dumps([asdict(h) | {"highlighted": h.highlighted} for h in hits], ensure_ascii=False))
        return
    table = Table(title=f"{mode} search in {kb.name}: {query}", show_lines=True)
    for column in ("#", "score", "document", "pages", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        pages = str(hit.page_start) if hit.page_start == hit.page_end else f"{hit.page_start}-{hit.page_end}"
        passage = mark(hit.text, hit.highlights, "[bold yellow]", "[/]", escape=escape)
        if hit.context_before or hit.context_after:
            passage = f"[dim]{hit.context_before[-200:]}[/]{passage}[dim]{hit.context_after[:200]}[/]"
        table.add_row(str(rank), f"{hit.score:.3f}", hit.filename, pages, passage)
    out.print(table)
    if not hits:
        out.print("no results")


def reindex(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="New embedding model (default: the same).")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="New (Matryoshka) dimension.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run the job now and show progress.")] = True,
) -> None:
    """Re-embed a knowledge base (e.g. with another model) into a new index and switch when done; searches keep
    answering from the old index meanwhile."""
    from zhiku.knowledge import get_knowledge_base
    from zhiku.pipeline.reindex import start_reindex
    from zhiku.pipeline.tasks import job_runner

    zhiku = _open()
    runner = job_runner(zhiku)
    try:
        kb = get_knowledge_base(zhiku, kb_name)
        job = start_reindex(zhiku, kb, model=model, dimension=dim)
        if wait:
            runner.start()
            _run_with_progress(zhiku, runner, [job.id])
            runner.stop()
            kb = get_knowledge_base(zhiku, kb.id)
            out.print(f"{kb.name}: now {kb.embedding_model}, {kb.dimension} dims")
        else:
            out.print(f"queued re-index job {job.id}")
    finally:
        runner.stop()
        zhiku.close()
