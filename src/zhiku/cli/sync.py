"""`zhiku sync` (bring sources up to date), `zhiku sources` (list, remove), and `zhiku ingest URL` (add a git
repository as a source and sync it): embedded, or through a running server."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import err, find_server, open_zhiku, out
from zhiku.cli.jobs import follow_on_server, run_with_progress
from zhiku.client import Client
from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError, NotFoundError, SourceFetchError, ZhikuError
from zhiku.ingest.git import is_repository_folder
from zhiku.knowledge.bases import get_knowledge_base, list_knowledge_bases
from zhiku.knowledge.documents import documents_by_id
from zhiku.knowledge.sources import (
    SyncReport,
    add_source,
    delete_source,
    is_local_repository,
    list_sources,
    prune_repositories,
    sync_source,
    synced_files,
)
from zhiku.pipeline.tasks import job_runner
from zhiku.storage.models import KnowledgeBase, Source

sources_app = typer.Typer(help="List and remove the sources (git repositories, folders) kept in sync.")

SHOWN_SKIPPED = 20
"""Skipped files listed after a sync (the rest are counted)."""


def looks_like_source(location: str) -> bool:
    """True for what ``zhiku ingest`` reads as a repository: a URL, or a folder at the top of a git repository."""
    if "://" in location:
        return True
    return is_local_repository(location) and is_repository_folder(Path(location).expanduser())


def _row(location: str, commit: str | None, counts: dict[str, Any]) -> list[str]:
    return [
        location,
        (commit or "")[:10],
        str(len(counts["added"])),
        str(len(counts["changed"])),
        str(len(counts["removed"])),
        str(counts["unchanged"]),
        str(len(counts["skipped"])),
    ]


def _table(rows: Sequence[list[str]]) -> Table:
    table = Table(title="sync")
    for column in ("source", "commit", "added", "changed", "removed", "unchanged", "skipped"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # URLs and paths are text, never markup
    return table


def _print_skipped(skipped: Sequence[tuple[str, str]]) -> None:
    for path, reason in skipped[:SHOWN_SKIPPED]:
        out.print(f"  skipped {escape(path)}: {escape(reason)}", soft_wrap=True)
    if len(skipped) > SHOWN_SKIPPED:
        out.print(f"  ... and {len(skipped) - SHOWN_SKIPPED} more skipped")


def _report_counts(report: SyncReport) -> dict[str, Any]:
    return {
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
    }


def _print_documents(zhiku: Zhiku, reports: Sequence[SyncReport]) -> None:
    """After waiting: how the synced files' ingestion ended, with the failures named."""
    ids = [r.document_id for report in reports for r in report.registrations if r.document_id and r.job_id]
    documents = documents_by_id(zhiku, ids)
    counts: dict[str, int] = {}
    for document in documents.values():
        counts[document.status] = counts.get(document.status, 0) + 1
        if document.status == "failed":
            out.print(f"  failed {escape(document.filename)}: {escape(document.error or '')}", soft_wrap=True)
    if counts:
        out.print("ingested: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


def _embedded_sync(
    zhiku: Zhiku, pairs: Sequence[tuple[KnowledgeBase, Source]], *, wait: bool, raise_errors: bool = False
) -> bool:
    """Sync ``pairs`` in this process (running their jobs when ``wait``); False if any sync failed (its error is
    printed and the others go on, or, with ``raise_errors``, raised)."""
    runner = job_runner(zhiku)
    try:
        if wait and zhiku.settings.job_backend == "embedded":
            runner.start()  # files are ingested while later sources are still being fetched
        reports, rows, ok = [], [], True
        for kb, source in pairs:
            try:
                report = sync_source(zhiku, kb, source)
            except ZhikuError as exc:
                if raise_errors:
                    raise
                err.print(f"[red]{escape(source.location)}: {escape(exc.message)}[/]", soft_wrap=True)
                ok = False
                continue
            reports.append(report)
            rows.append(_row(source.location, report.commit, _report_counts(report)))
        out.print(_table(rows))
        for report in reports:
            _print_skipped(report.skipped)
        job_ids = [job for report in reports for job in report.job_ids]
        if wait and job_ids:
            run_with_progress(zhiku, runner, job_ids)
            runner.stop()
            if zhiku.settings.job_backend == "embedded":
                for kb in {kb.id: kb for kb, _ in pairs}.values():
                    zhiku.vectors.optimize(kb.collection)
            _print_documents(zhiku, reports)
        return ok
    finally:
        runner.stop()


def ingest_source(kb_name: str, location: str, ref: str | None, *, wait: bool) -> None:
    """``zhiku ingest URL`` (or a local repository): remember the repository as a source of the knowledge base
    and sync it; ``zhiku sync`` brings it up to date later."""
    server = find_server()
    if server is not None:
        with server:
            if "://" not in location:
                raise InvalidInputError(
                    f"{location}: a running server fetches repositories by URL only; give its https/git/ssh URL, or "
                    "stop the server to read a local repository"
                )
            remote_kb = server.get_knowledge_base(kb_name)
            added = server.add_source(remote_kb["id"], location, ref)
            _print_remote([added["sync"]] if added["sync"] else [])
            if wait and added["sync"]:
                follow_on_server(server, remote_kb["id"], added["sync"]["job_ids"])
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        source, created = add_source(zhiku, kb, location, ref=ref)
        out.print(f"{'added' if created else 'syncing'} source {source.id[:12]}: {escape(source.location)}")
        try:
            _embedded_sync(zhiku, [(kb, source)], wait=wait, raise_errors=True)
        except SourceFetchError:
            if created:  # a repository that cannot be fetched is not remembered
                delete_source(zhiku, kb, source)
            raise


def _print_remote(results: Sequence[dict[str, Any]]) -> None:
    rows = []
    for result in results:
        counts = dict(result)
        counts["skipped"] = [(s["path"], s["reason"]) for s in result["skipped"]]
        rows.append(_row(result["source"]["location"], result["commit"], counts))
    out.print(_table(rows))
    for result in results:
        _print_skipped([(s["path"], s["reason"]) for s in result["skipped"]])


def sync(
    source: Annotated[str | None, typer.Argument(help="Source id (or unique prefix); default: every source.")] = None,
    kb_name: Annotated[str | None, typer.Option("--kb", help="Only this knowledge base's sources.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run the ingestion jobs now, with progress.")] = True,
) -> None:
    """Bring sources up to date: changed files become new versions, deleted files' documents are removed,
    untouched files are not read or embedded again."""
    server = find_server()
    if server is not None:
        with server:
            _sync_on_server(server, source, kb_name, wait=wait)
        return
    with open_zhiku() as zhiku:
        prune_repositories(zhiku)  # of sources deleted with their knowledge base
        kb = get_knowledge_base(zhiku, kb_name) if kb_name else None
        chosen = _choose(list_sources(zhiku, kb), source)
        kbs = {k.id: k for k in list_knowledge_bases(zhiku)} if kb is None else {kb.id: kb}
        pairs = [(kbs[s.kb_id], s) for s in chosen if s.kb_id in kbs]
        if not pairs:
            out.print("no sources to sync: add one with `zhiku ingest URL --kb NAME` or `zhiku watch DIR --kb NAME`")
            return
        if not _embedded_sync(zhiku, pairs, wait=wait):
            raise typer.Exit(1)


def _choose(sources: Sequence[Source], ident: str | None) -> list[Source]:
    if ident is None:
        return list(sources)
    found = [s for s in sources if s.id.startswith(ident.lower())]
    if len(found) != 1:
        what = "no source" if not found else f"{len(found)} sources"
        raise NotFoundError(f"{what} with id {ident!r} (see `zhiku sources list`)")
    return found


def _server_sources(server: Client, kb_name: str | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    kbs = [server.get_knowledge_base(kb_name)] if kb_name else server.list_knowledge_bases()
    return [(kb, source) for kb in kbs for source in server.list_sources(kb["id"])]


def _sync_on_server(server: Client, ident: str | None, kb_name: str | None, *, wait: bool) -> None:
    pairs = _server_sources(server, kb_name)
    if ident is not None:
        pairs = [(kb, s) for kb, s in pairs if s["id"].startswith(ident.lower())]
        if len(pairs) != 1:
            raise NotFoundError(f"{'no source' if not pairs else 'several sources'} with id {ident!r}")
    results, failed = [], False
    for kb, source in pairs:
        try:
            results.append((kb, server.sync_source(kb["id"], source["id"])))
        except ZhikuError as exc:
            err.print(f"[red]{escape(source['location'])}: {escape(exc.message)}[/]", soft_wrap=True)
            failed = True
    _print_remote([result for _, result in results])
    if wait:
        for kb, result in results:
            follow_on_server(server, kb["id"], result["job_ids"])
    if failed:
        raise typer.Exit(1)


@sources_app.command("list")
def sources_list(
    kb_name: Annotated[str | None, typer.Option("--kb", help="Only this knowledge base's sources.")] = None,
) -> None:
    """List the sources kept in sync, with their last sync."""
    server = find_server()
    if server is not None:
        with server:
            rows = [
                [s["id"][:12], kb["name"], s["kind"], s["location"], s["ref"] or "", (s["commit"] or "")[:10],
                 s["status"], str(s["files"]), str(s["synced_at"] or ""), s["error"] or ""]
                for kb, s in _server_sources(server, kb_name)
            ]  # fmt: skip
    else:
        with open_zhiku() as zhiku:
            kb = get_knowledge_base(zhiku, kb_name) if kb_name else None
            names = {k.id: k.name for k in list_knowledge_bases(zhiku)}
            rows = [
                [s.id[:12], names.get(s.kb_id, s.kb_id), s.kind, s.location, s.ref or "", (s.commit or "")[:10],
                 s.status, str(synced_files(s)), str(s.synced_at or ""), s.error or ""]
                for s in list_sources(zhiku, kb)
            ]  # fmt: skip
    table = Table(title="sources")
    for column in ("id", "kb", "kind", "location", "ref", "commit", "status", "files", "synced", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


@sources_app.command("remove")
def sources_remove(
    source: Annotated[str, typer.Argument(help="Source id or unique prefix.")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    keep_documents: Annotated[
        bool, typer.Option("--keep-documents", help="Keep its documents (they are no longer synced).")
    ] = False,
) -> None:
    """Forget a source and delete its documents (unless --keep-documents)."""
    server = find_server()
    if server is not None:
        with server:
            remote_kb = server.get_knowledge_base(kb_name)
            found = [s for s in server.list_sources(remote_kb["id"]) if s["id"].startswith(source.lower())]
            if len(found) != 1:
                raise NotFoundError(f"{'no source' if not found else 'several sources'} with id {source!r}")
            server.delete_source(remote_kb["id"], found[0]["id"], keep_documents=keep_documents)
        out.print(f"removed source {found[0]['id'][:12]}")
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        (chosen,) = _choose(list_sources(zhiku, kb), source)
        deleted = delete_source(zhiku, kb, chosen, keep_documents=keep_documents)
    out.print(f"removed source {chosen.id[:12]} and {deleted} documents")
