"""`zhiku ingest` (files into a knowledge base, with a progress bar) and `zhiku reindex`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import find_server, open_zhiku, out, parse_meta
from zhiku.cli.jobs import follow_on_server, progress_bar, run_with_progress
from zhiku.cli.sync import ingest_source, looks_like_source
from zhiku.client import Client
from zhiku.core import Zhiku
from zhiku.errors import DocumentError, InvalidInputError, ZhikuError
from zhiku.ingest.sources import SourceFile, SourceProblem, iter_sources
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.documents import Labels, Registration, documents_by_id, group_size, register_in_groups
from zhiku.knowledge.jobs import unfinished_jobs
from zhiku.pipeline.reindex import start_reindex
from zhiku.pipeline.tasks import job_runner
from zhiku.search.filters import normalize_tag
from zhiku.storage.models import KnowledgeBase


def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files and folders (recursively; .gitignore respected), or one git repository: a URL or a local "
            "repository's folder, whose tracked files are read and which `zhiku sync` brings up to date later."
        ),
    ],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    include: Annotated[list[str] | None, typer.Option("--include", help="Only files matching this glob.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Skip files matching this glob.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run the jobs now and show progress.")] = True,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag every file with this (repeatable).")] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Set metadata KEY=VALUE on every file (repeatable).")
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Git repository: the branch or tag to follow (default: its HEAD).")
    ] = None,
) -> None:
    """Ingest files into a knowledge base with a progress bar, then print what happened to each file; or add a
    git repository (URL or local) as a source of the knowledge base and sync it."""
    if any(looks_like_source(path) for path in paths):
        if len(paths) != 1 or include or exclude or tag or meta:
            raise InvalidInputError(
                "a git repository is ingested on its own (one URL or repository folder, without --include, "
                "--exclude, --tag or --meta)"
            )
        ingest_source(kb_name, paths[0], ref, wait=wait)
        return
    if ref is not None:
        raise InvalidInputError("--ref is for a git repository (a URL or a repository's folder)", param="ref")
    files = [Path(path) for path in paths]
    labels = Labels(tags=[normalize_tag(t) for t in tag] if tag else None, metadata=parse_meta(meta) if meta else None)
    server = find_server()
    if server is not None:
        with server:
            _ingest_on_server(server, kb_name, files, include or (), exclude or (), labels, wait=wait)
        return
    with open_zhiku() as zhiku:
        runner = job_runner(zhiku)
        try:
            kb = get_knowledge_base(zhiku, kb_name)
            if wait and zhiku.settings.job_backend == "embedded":
                runner.start()  # documents are ingested while the rest are still being registered
            registrations = _register(zhiku, kb, list(iter_sources(files, include or (), exclude or ())), labels)
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
    registered = register_in_groups(zhiku, kb, [path for _, path in files], labels=labels, created_by="cli")
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


@dataclass(frozen=True)
class DocumentState:
    """What the outcome table shows of a registered document."""

    status: str
    chunk_count: int
    pages: int | None
    error: str | None
    warnings: Sequence[Any] = field(default_factory=list)


def _print_outcomes(zhiku: Zhiku, registrations: Sequence[Registration], *, waited: bool) -> None:
    documents = documents_by_id(zhiku, [item.document_id for item in registrations if item.document_id])
    states = {
        document_id: DocumentState(d.status, d.chunk_count, d.pages, d.error, list(d.warnings or []))
        for document_id, d in documents.items()
    }
    print_outcomes(registrations, states, waited=waited)


def print_outcomes(
    registrations: Sequence[Registration], documents: Mapping[str, DocumentState], *, waited: bool
) -> None:
    """The table of what happened to each file, and the counts by outcome."""
    table = Table(title="ingestion")
    for column in ("file", "status", "chunks", "pages", "detail"):
        table.add_column(column, overflow="fold")
    counts: dict[str, int] = {}
    for item in registrations:
        status, chunks, pages, detail = item.outcome, "", "", item.message
        if item.document_id:
            document = documents.get(item.document_id)
            if document is not None and (waited or item.outcome != "queued"):
                status = document.status if item.outcome == "queued" else item.outcome
                chunks, pages = str(document.chunk_count or ""), str(document.pages or "")
                detail = document.error or item.message or "; ".join(str(w) for w in document.warnings[:2])
        counts[status] = counts.get(status, 0) + 1
        style = {"ready": "green", "failed": "red", "duplicate": "yellow"}.get(status, "")
        # file names and messages are text, never markup ("[torch]" in a message, "[red]" in a file name)
        name, detail = escape(Path(item.source).name), escape(detail or "")
        table.add_row(name, f"[{style}]{status}[/]" if style else status, chunks, pages, detail)
    out.print(table)
    out.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))


def _ingest_on_server(
    server: Client,
    kb_name: str,
    paths: Sequence[Path],
    include: Sequence[str],
    exclude: Sequence[str],
    labels: Labels,
    *,
    wait: bool,
) -> None:
    """``zhiku ingest`` through a running server: the files are found here as embedded (the same includes,
    excludes and .gitignore), uploaded one by one (under their absolute path, which is their identity on the
    server, as their path is embedded), followed through the server's job events, and listed as embedded."""
    kb = server.get_knowledge_base(kb_name)
    sources = list(iter_sources(paths, include, exclude))
    registrations: list[Registration] = []
    tags = list(labels.tags) if labels.tags else None
    with progress_bar() as progress:
        task = progress.add_task("uploading", total=len(sources), detail="")
        for item in sources:
            progress.advance(task)
            if isinstance(item, SourceProblem):
                registrations.append(Registration(str(item.path), "failed", message=item.message))
                continue
            try:
                outcomes = server.upload(
                    kb["id"], item.path, str(item.path.absolute()), tags=tags, metadata=labels.metadata
                )
            except ZhikuError as exc:
                if not _about_the_file(exc):
                    raise  # the server, the key, the knowledge base, the quota: the command stops
                registrations.append(Registration(str(item.path), "failed", message=exc.message))
                continue
            except OSError as exc:
                registrations.append(Registration(str(item.path), "failed", message=f"cannot read: {exc.strerror}"))
                continue
            got = outcomes[0]
            registrations.append(
                Registration(str(item.path), got["outcome"], got["document_id"], got["job_id"], got["message"])
            )
    job_ids = [r.job_id for r in registrations if r.job_id]
    if wait:
        follow_on_server(server, kb["id"], job_ids)
    states = {
        d["id"]: DocumentState(d["status"], d["chunk_count"], d["pages"], d["error"], d["warnings"])
        for d in server.list_documents(kb["id"])
    }
    print_outcomes(registrations, states, waited=wait)


def _about_the_file(exc: ZhikuError) -> bool:
    """True for an upload refused because of the file itself (its type, content or size): that file fails, the
    others go on."""
    if exc.code == "quota_exceeded":
        return False
    return isinstance(exc, DocumentError) or exc.param == "files" or exc.status_code == 413


def reindex(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="New embedding model (default: the same).")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="New (Matryoshka) dimension.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run the job now and show progress.")] = True,
) -> None:
    """Re-embed a knowledge base (e.g. with another model) into a new index and switch when done; searches keep
    answering from the old index meanwhile."""
    server = find_server()
    if server is not None:
        with server:
            kb_out = server.get_knowledge_base(kb_name)
            queued = server.reindex(kb_out["id"], model, dim)
            if wait:
                follow_on_server(server, kb_out["id"], [queued["id"]])
                kb_out = server.get_knowledge_base(kb_out["id"])
                out.print(f"{kb_out['name']}: now {kb_out['model']}, {kb_out['dimension']} dims")
            else:
                out.print(f"queued re-index job {queued['id']}")
        return
    with open_zhiku() as zhiku:
        runner = job_runner(zhiku)
        try:
            kb = get_knowledge_base(zhiku, kb_name)
            job = start_reindex(zhiku, kb, model=model, dimension=dim, created_by="cli")
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
