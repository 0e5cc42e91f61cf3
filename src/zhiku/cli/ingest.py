"""`zhiku ingest` (files into a knowledge base, with a progress bar) and `zhiku reindex`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from zhiku.cli.common import open_zhiku, out, parse_meta
from zhiku.cli.jobs import run_with_progress
from zhiku.core import Zhiku
from zhiku.ingest.sources import SourceFile, SourceProblem, iter_sources
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.documents import Labels, Registration, documents_by_id, group_size, register_in_groups
from zhiku.knowledge.jobs import unfinished_jobs
from zhiku.pipeline.reindex import start_reindex
from zhiku.pipeline.tasks import job_runner
from zhiku.search.filters import normalize_tag
from zhiku.storage.models import KnowledgeBase


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
    labels = Labels(tags=[normalize_tag(t) for t in tag] if tag else None, metadata=parse_meta(meta) if meta else None)
    with open_zhiku() as zhiku:
        runner = job_runner(zhiku)
        try:
            kb = get_knowledge_base(zhiku, kb_name)
            if wait and zhiku.settings.job_backend == "embedded":
                runner.start()  # documents are ingested while the rest are still being registered
            registrations = _register(zhiku, kb, list(iter_sources(paths, include or (), exclude or ())), labels)
            job_ids = [r.job_id for r in registrations if r.job_id]
            if wait:
                job_ids += unfinished_jobs(zhiku, kb.id, exclude=set(job_ids))  # e.g. interrupted by a crash
                run_with_progress(zhiku, runner, job_ids)
                runner.stop()
                if job_ids and zhiku.settings.job_backend == "embedded":  # workers own the store otherwise
                    zhiku.vectors.optimize(kb.collection)
            _print_outcomes(zhiku, registrations, waited=wait)
        finally:
            runner.stop()


def _register(
    zhiku: Zhiku, kb: KnowledgeBase, sources: list[SourceFile | SourceProblem], labels: Labels
) -> list[Registration]:
    """Register the files among ``sources`` (:func:`register_in_groups`); the outcomes are listed as they come: a
    path that cannot be read as soon as it is found, files with their group, which is registered once it is full
    (the last one at the end)."""
    files = [(position, item.path) for position, item in enumerate(sources) if isinstance(item, SourceFile)]
    registered = register_in_groups(zhiku, kb, [path for _, path in files], labels=labels)
    outcomes = [
        (position, Registration(str(item.path), "failed", message=item.message))
        for position, item in enumerate(sources)
        if isinstance(item, SourceProblem)
    ]
    start = 0
    while start < len(files):
        size = group_size(zhiku, start)
        group = files[start : start + size]
        done = group[-1][0] if len(group) == size else len(sources)
        outcomes += [(done, registration) for registration in registered[start : start + size]]
        start += size
    return [registration for _, registration in sorted(outcomes, key=lambda outcome: outcome[0])]


def _print_outcomes(zhiku: Zhiku, registrations: Sequence[Registration], *, waited: bool) -> None:
    table = Table(title="ingestion")
    for column in ("file", "status", "chunks", "pages", "detail"):
        table.add_column(column, overflow="fold")
    counts: dict[str, int] = {}
    documents = documents_by_id(zhiku, [item.document_id for item in registrations if item.document_id])
    for item in registrations:
        status, chunks, pages, detail = item.outcome, "", "", item.message
        if item.document_id:
            document = documents.get(item.document_id)
            if document is not None and (waited or item.outcome != "queued"):
                status = document.status if item.outcome == "queued" else item.outcome
                chunks, pages = str(document.chunk_count or ""), str(document.pages or "")
                detail = document.error or item.message or "; ".join(document.warnings[:2])
        counts[status] = counts.get(status, 0) + 1
        style = {"ready": "green", "failed": "red", "duplicate": "yellow"}.get(status, "")
        table.add_row(Path(item.source).name, f"[{style}]{status}[/]" if style else status, chunks, pages, detail)
    out.print(table)
    out.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


def reindex(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="New embedding model (default: the same).")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="New (Matryoshka) dimension.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run the job now and show progress.")] = True,
) -> None:
    """Re-embed a knowledge base (e.g. with another model) into a new index and switch when done; searches keep
    answering from the old index meanwhile."""
    with open_zhiku() as zhiku:
        runner = job_runner(zhiku)
        try:
            kb = get_knowledge_base(zhiku, kb_name)
            job = start_reindex(zhiku, kb, model=model, dimension=dim)
            if wait:
                runner.start()
                run_with_progress(zhiku, runner, [job.id])
                runner.stop()
                kb = get_knowledge_base(zhiku, kb.id)
                out.print(f"{kb.name}: now {kb.embedding_model}, {kb.dimension} dims")
            else:
                out.print(f"queued re-index job {job.id}")
        finally:
            runner.stop()
