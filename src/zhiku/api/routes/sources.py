"""Sources of a knowledge base: git repositories added by URL, kept in sync on request (add, list, get, sync,
delete). Folders are kept in sync by the server's own setting (``watch_folders``) and appear here too.

The routes run in the thread pool: a sync fetches the repository (within ``source_timeout_seconds``) and
registers the changed files before it answers; their ingestion jobs run afterwards (follow them with the
knowledge base's job events)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from zhiku.api.auth import Reader, Writer
from zhiku.api.deps import State
from zhiku.api.schemas import JsonBody
from zhiku.errors import SourceFetchError
from zhiku.ingest.git import MAX_REF_CHARS, MAX_URL_CHARS
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.sources import (
    SyncReport,
    add_source,
    delete_source,
    get_source,
    list_sources,
    sync_source,
    synced_files,
)
from zhiku.storage.models import Source

router = APIRouter(prefix="/api/v1/knowledge-bases/{kb_id}/sources", tags=["sources"])


class SourceCreate(JsonBody):
    """A git repository to keep a knowledge base in sync with."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="An https, http, git or ssh URL of a repository (no file:// or local paths, no credentials; "
        "hosts on private or loopback addresses only if the server allows them: setting source_allow_private).",
    )
    ref: str | None = Field(
        default=None, max_length=MAX_REF_CHARS, description="Branch or tag to follow; default: the remote's HEAD."
    )
    sync: bool = Field(default=True, description="Sync at once (fetch and queue the files' ingestion).")


class SourceOut(BaseModel):
    """A source and how its last sync went."""

    id: str
    knowledge_base_id: str
    kind: str = Field(description="'git' or 'folder'.")
    location: str = Field(description="The repository's URL, or the folder's path on the server.")
    ref: str | None
    commit: str | None = Field(description="The commit of the last successful sync (git).")
    status: str = Field(description="'new', 'syncing', 'synced' or 'failed'.")
    error: str | None
    files: int = Field(description="Files recorded at the last sync.")
    synced_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, source: Source) -> SourceOut:
        """Build from a row."""
        return cls(
            id=source.id,
            knowledge_base_id=source.kb_id,
            kind=source.kind,
            location=source.location,
            ref=source.ref,
            commit=source.commit,
            status=source.status,
            error=source.error,
            files=synced_files(source),
            synced_at=source.synced_at,
            created_at=source.created_at,
        )


class SkippedFile(BaseModel):
    """A file a sync left out, and why."""

    path: str
    reason: str


class SyncOut(BaseModel):
    """What a sync did: the files added, changed (a new version each), removed and left alone, the ingestion
    jobs it queued."""

    source: SourceOut
    commit: str | None
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int
    skipped: list[SkippedFile]
    job_ids: list[str]

    @classmethod
    def of(cls, source: Source, report: SyncReport) -> SyncOut:
        """Build from a sync's report."""
        return cls(
            source=SourceOut.of(source),
            commit=report.commit,
            added=report.added,
            changed=report.changed,
            removed=report.removed,
            unchanged=report.unchanged,
            skipped=[SkippedFile(path=path, reason=reason) for path, reason in report.skipped],
            job_ids=report.job_ids,
        )


class SourceAdded(BaseModel):
    """A source just added (or found: the same URL and ref again), with its first sync when one ran."""

    source: SourceOut
    created: bool
    sync: SyncOut | None


@router.post(
    "",
    status_code=201,
    responses={200: {"model": SourceAdded, "description": "The same URL and ref were added before: that source"}},
)
def add(kb_id: str, body: SourceCreate, state: State, principal: Writer, response: Response) -> SourceAdded:
    """Add a git repository by URL and (unless `sync` is false) sync it: its tracked files become documents.
    The same URL and ref again is the same source (200, synced again)."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    source, created = add_source(state.zhiku, kb, body.url, ref=body.ref, from_api=True)
    if not created:
        response.status_code = 200
    report = None
    if body.sync:
        try:
            report = sync_source(state.zhiku, kb, source, from_api=True, wait=False)
        except SourceFetchError:
            if created:  # a URL that cannot be fetched (a typo, a private repository) is not remembered
                delete_source(state.zhiku, kb, source)
            raise
    return SourceAdded(
        source=SourceOut.of(source), created=created, sync=SyncOut.of(source, report) if report else None
    )


@router.get("")
def list_all(kb_id: str, state: State, principal: Reader) -> list[SourceOut]:
    """The knowledge base's sources, oldest first."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return [SourceOut.of(source) for source in list_sources(state.zhiku, kb)]


@router.get("/{source_id}")
def get(kb_id: str, source_id: str, state: State, principal: Reader) -> SourceOut:
    """One source (by id or unique id prefix)."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return SourceOut.of(get_source(state.zhiku, kb, source_id))


@router.post("/{source_id}/sync")
def sync(kb_id: str, source_id: str, state: State, principal: Writer) -> SyncOut:
    """Bring the source's documents up to date: changed files become new versions, deleted files' documents are
    removed, untouched files are not read or embedded again. 409 while another sync of it runs."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    source = get_source(state.zhiku, kb, source_id)
    report = sync_source(state.zhiku, kb, source, from_api=True, wait=False)
    return SyncOut.of(source, report)


@router.delete("/{source_id}", status_code=204)
def delete(
    kb_id: str,
    source_id: str,
    state: State,
    principal: Writer,
    keep_documents: Annotated[bool, Query(description="Keep its documents (no longer synced).")] = False,
) -> Response:
    """Forget a source and (unless `keep_documents`) delete its documents."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    delete_source(state.zhiku, kb, get_source(state.zhiku, kb, source_id), keep_documents=keep_documents)
    return Response(status_code=204)
