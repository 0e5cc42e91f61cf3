"""Documents: register files for ingestion (blob store, dedup by content, versions, labels), re-ingest, list, find,
delete; display names of uploads."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from zhiku.core import Zhiku
from zhiku.errors import ConflictError, ZhikuError
from zhiku.jobs.dispatch import dispatch
from zhiku.jobs.kinds import INGEST_KIND
from zhiku.search.filters import check_metadata, normalize_tag
from zhiku.storage.lookup import find_by_id
from zhiku.storage.models import (
    Chunk,
    Document,
    DocumentStatus,
    DocumentTag,
    Job,
    JobStatus,
    KnowledgeBase,
    new_id,
)
from zhiku.storage.ocr_pages import forget_ocr


@dataclass(frozen=True)
class Registration:
    """What happened to one file handed to :func:`register_file`."""

    source: str
    outcome: str
    """``queued`` (new or changed: a job will ingest it), ``unchanged``, ``duplicate`` or ``failed``."""
    document_id: str | None = None
    job_id: str | None = None
    message: str = ""


def drop_unreferenced_blobs(zhiku: Zhiku, hashes: set[str]) -> None:
    with zhiku.db.session() as session:
        for sha in hashes:
            used = session.scalar(
                select(func.count())
                .select_from(Document)
                .where((Document.content_hash == sha) | (Document.pending_hash == sha))
            )
            if not used:
                zhiku.blobs.delete(sha)
                forget_ocr(zhiku.db, sha)


MAX_FILENAME_BYTES = 255
"""Display names are cut to this many UTF-8 bytes (the file-name limit of common file systems), so a downloaded
file can be saved under its name. They are never used as path components on the server."""


def sanitize_filename(name: str, max_bytes: int | None = MAX_FILENAME_BYTES) -> str:
    """The last path component of ``name``, without control characters; never empty, never a path.

    Names over ``max_bytes`` UTF-8 bytes (``None``: no limit) are shortened in the middle: the stem is cut at a
    character boundary and marked with "…", the extension (which helps to tell the file's type) is kept.
    """
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")  # surrogates are not printable
    if max_bytes is not None and len(base.encode("utf-8")) > max_bytes:
        stem, dot, extension = base.rpartition(".")
        suffix = dot + extension if dot and stem and len(extension.encode("utf-8")) <= 16 else ""
        stem = base[: len(base) - len(suffix)]
        budget = max_bytes - len(suffix.encode("utf-8")) - len("…".encode())
        base = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip() + "…" + suffix
    return base or "unnamed"


@dataclass(frozen=True)
class Labels:
    """Tags, metadata and date to give a document; ``None`` leaves the current value alone."""

    tags: Sequence[str] | None = None
    metadata: dict[str, str] | None = None
    document_date: dt.datetime | None = None


@dataclass(frozen=True)
class NewFile:
    """A file for :func:`register_files`, with the identity and name to give it (defaults as in
    :func:`register_file`)."""

    path: Path
    source: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class _Stored:
    source: str
    display: str
    sha256: str
    size: int
    modified: dt.datetime


def register_file(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    path: Path,
    *,
    source: str | None = None,
    filename: str | None = None,
    labels: Labels | None = None,
    created_by: str | None = None,
) -> Registration:
    """Store a file and queue its ingestion; report duplicates, unchanged files and unreadable ones.

    ``source`` identifies the document within the knowledge base (default: the resolved path); a file with a
    known source and new content becomes a new version of that document, replacing the old one atomically
    once ingested. ``filename`` (default: the file's name) is what users see; it is sanitised. ``labels`` are
    applied even when the content is unchanged; the document date defaults to the file's modification time.
    ``created_by`` (who asked: :attr:`zhiku.keys.Principal.actor`) is recorded on new documents and the jobs.
    """
    return register_files(zhiku, kb, [NewFile(path, source, filename)], labels=labels, created_by=created_by)[0]


def register_files(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    files: Sequence[Path | NewFile],
    *,
    labels: Labels | None = None,
    created_by: str | None = None,
) -> list[Registration]:
    """:func:`register_file` for many files at once: each is stored, then all are registered in one transaction
    (one commit instead of one per file), so a folder's documents reach the job queue sooner and with less work.

    Returns one registration per file, in order. Should the shared transaction fail (say, another process
    registered the same source meanwhile), the files are registered one by one, so only the culprit raises.
    """
    labels = labels or Labels()
    tags = [normalize_tag(t) for t in labels.tags] if labels.tags is not None else None
    metadata = check_metadata(labels.metadata) if labels.metadata is not None else None
    results: list[Registration | _Stored] = [
        _store(zhiku, item if isinstance(item, NewFile) else NewFile(item)) for item in files
    ]
    stored = [(index, item) for index, item in enumerate(results) if isinstance(item, _Stored)]

    def label(row: Document, item: _Stored) -> None:
        _apply_labels(row, tags, metadata, labels.document_date or item.modified)
        row.created_by = row.created_by or created_by  # a new version keeps who added the document

    try:
        with zhiku.db.session() as session:
            outcomes = _register_blobs(session, zhiku, kb, [item for _, item in stored], label)
            _mark_jobs(session, outcomes, created_by)
            done = [(index, outcome) for (index, _), outcome in zip(stored, outcomes, strict=True)]
    except Exception:
        if len(stored) <= 1:
            raise
        done = []
        for index, item in stored:
            with zhiku.db.session() as session:
                outcome = _register_blobs(session, zhiku, kb, [item], label)[0]
                _mark_jobs(session, [outcome], created_by)
                done.append((index, outcome))
    for index, registration in done:
        results[index] = registration
    registrations = [r for r in results if isinstance(r, Registration)]
    dispatch(zhiku, [r.job_id for r in registrations if r.job_id])
    return registrations


def _mark_jobs(session: Session, registrations: Sequence[Registration], created_by: str | None) -> None:
    """Record who queued the registrations' jobs."""
    ids = [r.job_id for r in registrations if r.job_id]
    if created_by is not None and ids:
        session.execute(update(Job).where(Job.id.in_(ids)).values(created_by=created_by))


FIRST_GROUP = 4
"""Files in the first registration group: few, so that a worker starts parsing them (and the model embedding them)
at once instead of waiting for a full group to be stored and registered."""


def group_size(zhiku: Zhiku, registered: int) -> int:
    """How many files to register in the next group, ``registered`` files having been handled before it."""
    size = zhiku.settings.ingest_batch_documents
    return min(FIRST_GROUP, size) if registered == 0 else size


def register_in_groups(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    files: Sequence[Path | NewFile],
    *,
    labels: Labels | None = None,
    created_by: str | None = None,
) -> list[Registration]:
    """:func:`register_files` a group at a time (:func:`group_size`), as ``zhiku ingest`` does: the first group's
    jobs are queued (and can start) while the rest are still being stored."""
    registrations: list[Registration] = []
    start = 0
    while start < len(files):
        end = start + group_size(zhiku, start)
        registrations += register_files(zhiku, kb, files[start:end], labels=labels, created_by=created_by)
        start = end
    return registrations


def _store(zhiku: Zhiku, item: NewFile) -> Registration | _Stored:
    """Copy the file into the blob store, or say why it cannot be registered."""
    path = item.path
    source = item.source or os.path.abspath(path)
    display = sanitize_filename(item.filename or path.name)  # the path may be a staging file named by a number
    try:
        if path.is_symlink():
            path.resolve(strict=True)  # raises on loops and dangling links
        if not path.is_file():
            return Registration(source, "failed", message=f"{display}: not a regular file")
        stat = path.stat()
        if stat.st_size > zhiku.settings.max_file_bytes:
            return Registration(
                source,
                "failed",
                message=f"{display}: {stat.st_size:,} bytes is over the limit of "
                f"{zhiku.settings.max_file_bytes:,} (setting max_file_bytes)",
            )
        blob = zhiku.blobs.put_file(path, max_bytes=zhiku.settings.max_file_bytes)
    except RuntimeError as exc:  # pathlib reports symlink loops as RuntimeError on some versions
        return Registration(source, "failed", message=f"{display}: {exc}")
    except OSError as exc:
        return Registration(source, "failed", message=f"{display}: cannot read ({exc.strerror or exc})")
    except ZhikuError as exc:
        return Registration(source, "failed", message=exc.message)
    return _Stored(source, display, blob.sha256, blob.size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))


def _apply_labels(
    document: Document, tags: Sequence[str] | None, metadata: dict[str, str] | None, when: dt.datetime | None
) -> None:
    if tags is not None:
        document.tag_rows = [DocumentTag(document_id=document.id, tag=t) for t in sorted(set(tags))]
    if metadata is not None:
        document.meta = dict(metadata)
    if when is not None:
        document.document_date = when


def label_document(
    zhiku: Zhiku,
    document: Document,
    *,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    set_metadata: dict[str, str] | None = None,
    unset_metadata: Sequence[str] = (),
    document_date: dt.datetime | None = None,
) -> Document:
    """Change a document's tags, metadata or date; takes effect for the next search (no re-indexing)."""
    added = {normalize_tag(t) for t in add_tags}
    removed = {normalize_tag(t) for t in remove_tags}
    with zhiku.db.session() as session:
        row = session.get_one(Document, document.id)
        # an auto-tag a person removes is gone (until auto-tagging runs again); one a person adds becomes theirs
        confidence = {tag.tag: tag.confidence for tag in row.tag_rows if tag.tag not in added}
        tags = (set(row.tags) | added) - removed
        metadata = {
            k: v for k, v in {**row.meta, **check_metadata(set_metadata or {})}.items() if k not in set(unset_metadata)
        }
        _apply_labels(row, None, metadata, document_date)
        row.tag_rows = [
            DocumentTag(document_id=row.id, tag=tag, confidence=confidence.get(tag)) for tag in sorted(tags)
        ]
        session.flush()
        session.refresh(row)
        return row


_LIVE = (DocumentStatus.ready, DocumentStatus.queued, DocumentStatus.parsing, DocumentStatus.embedding)
"""Statuses of a document whose content counts as present (a new file with the same content is a duplicate)."""


def _register_blobs(
    session: Session,
    zhiku: Zhiku,
    kb: KnowledgeBase,
    items: Sequence[_Stored],
    label: Callable[[Document, _Stored], None],
) -> list[Registration]:
    """Register stored contents under their sources (new document, new version, duplicate or unchanged), in
    order, applying ``label`` to each document row, in the caller's transaction.

    Three queries for the whole batch (documents by source, live documents by content, queued jobs of the known
    documents), one flush at the end: each file still sees the ones before it (a second file with the same content
    is a duplicate of the first, the same source twice is a new version).
    """
    sources = {item.source for item in items}
    by_source = {
        d.source: d
        for d in session.scalars(select(Document).where(Document.kb_id == kb.id, Document.source.in_(sources)))
    }
    by_hash: dict[str, list[Document]] = {}
    hashes = {item.sha256 for item in items}
    live = select(Document).where(
        Document.kb_id == kb.id, Document.content_hash.in_(hashes), Document.status.in_(_LIVE)
    )
    for row in session.scalars(live):
        by_hash.setdefault(row.content_hash, []).append(row)
    queued: dict[str, list[Job]] = {}
    if by_source:
        known = [d.id for d in by_source.values()]
        for job in session.scalars(select(Job).where(Job.document_id.in_(known), Job.status == JobStatus.queued)):
            queued.setdefault(job.document_id or "", []).append(job)
    registrations = []
    for item in items:
        registration = _register_one(session, zhiku, kb, item, by_source, by_hash, queued)
        label(by_source[item.source], item)
        registrations.append(registration)
    session.flush()
    return registrations


def _register_one(
    session: Session,
    zhiku: Zhiku,
    kb: KnowledgeBase,
    stored: _Stored,
    by_source: dict[str, Document],
    by_hash: dict[str, list[Document]],
    queued: dict[str, list[Job]],
) -> Registration:
    """One file of :func:`_register_blobs`; updates its lookup tables with the rows it adds or changes."""
    source, filename, sha, size = stored.source, stored.display, stored.sha256, stored.size
    document = by_source.get(source)
    if document is not None:
        in_flight = document.pending_hash == sha
        if (document.content_hash == sha and document.status == DocumentStatus.ready) or in_flight:
            return Registration(source, "unchanged", document.id, message="content unchanged")
    twin = next((d for d in by_hash.get(sha, []) if d.source != source and d.status in _LIVE), None)
    if twin is not None and (document is None or document.version == 0):
        document = document or Document(id=new_id(), kb_id=kb.id, source=source)
        document.filename, document.content_hash, document.size_bytes = filename, sha, size
        document.status, document.duplicate_of = DocumentStatus.duplicate, twin.id
        document.pending_version = document.pending_hash = None
        session.add(document)
        by_source[source] = document
        return Registration(source, "duplicate", document.id, message=f"same content as {twin.filename} ({twin.id})")
    if document is None:
        document = Document(id=new_id(), kb_id=kb.id, source=source, content_hash=sha, version=0)
        document.pending_version = 1  # a new id has no chunk rows of any version yet
        session.add(document)
    else:
        document.pending_version = _next_version(session, document)
    document.filename, document.size_bytes = filename, size
    document.pending_hash = sha
    document.status, document.error, document.duplicate_of = DocumentStatus.queued, None, None
    by_source[source] = document
    bucket = by_hash.setdefault(document.content_hash, [])  # a changed document keeps its old content until ingested
    if document not in bucket:
        bucket.append(document)
    job = Job(
        id=new_id(),
        kind=INGEST_KIND,
        kb_id=kb.id,
        document_id=document.id,
        max_attempts=zhiku.settings.job_max_attempts,
        payload={"version": document.pending_version, "sha256": sha},
    )
    for old in queued.get(document.id, []):  # a newer upload supersedes a queued one
        old.status, old.error = JobStatus.cancelled, "superseded by a newer version"
    queued[document.id] = [job]
    session.add(job)
    return Registration(source, "queued", document.id, job.id)


def reingest_document(
    zhiku: Zhiku, kb: KnowledgeBase, document: Document, *, created_by: str | None = None
) -> Registration:
    """Queue a fresh ingestion of a document's current content as a new version (e.g. after a parser upgrade)."""
    sha = document.pending_hash or document.content_hash
    if document.status == DocumentStatus.duplicate or not zhiku.blobs.exists(sha):
        raise ConflictError(f"{document.filename} has no stored content of its own to ingest again")
    with zhiku.db.session() as session:
        row = session.get_one(Document, document.id)
        if row.status in (DocumentStatus.queued, DocumentStatus.parsing, DocumentStatus.embedding):
            raise ConflictError(f"{row.filename} is already being ingested ({row.status})")
        row.pending_version = _next_version(session, row)
        row.pending_hash = sha
        row.status, row.error = DocumentStatus.queued, None
        job = Job(
            kind=INGEST_KIND,
            kb_id=kb.id,
            document_id=row.id,
            max_attempts=zhiku.settings.job_max_attempts,
            payload={"version": row.pending_version, "sha256": sha},
            created_by=created_by,
        )
        session.add(job)
        session.flush()
        registration = Registration(row.source, "queued", row.id, job.id)
    dispatch(zhiku, [job.id])
    return registration


def _next_version(session: Session, document: Document) -> int:
    highest = session.scalar(select(func.max(Chunk.version)).where(Chunk.document_id == document.id)) or 0
    return max(document.version, document.pending_version or 0, highest) + 1


def list_documents(zhiku: Zhiku, kb: KnowledgeBase) -> list[Document]:
    """A knowledge base's documents, newest first."""
    with zhiku.db.session() as session:
        return list(
            session.scalars(select(Document).where(Document.kb_id == kb.id).order_by(Document.created_at.desc()))
        )


def get_document(zhiku: Zhiku, kb: KnowledgeBase, document_id: str) -> Document:
    """A document of ``kb`` by id (or unique id prefix), or ``NotFoundError``."""
    with zhiku.db.session() as session:
        return find_by_id(
            session, select(Document).where(Document.kb_id == kb.id), Document.id, document_id, what="document"
        )


def delete_document(zhiku: Zhiku, kb: KnowledgeBase, document: Document) -> None:
    """Delete a document: vectors first, then its rows; its file if nothing else uses it."""
    zhiku.vectors.delete(kb.collection, document_id=document.id)
    with zhiku.db.session() as session:
        for job in session.scalars(select(Job).where(Job.document_id == document.id)):
            session.delete(job)
        session.execute(delete(Chunk).where(Chunk.document_id == document.id))
        session.delete(session.get_one(Document, document.id))
    drop_unreferenced_blobs(zhiku, {h for h in (document.content_hash, document.pending_hash) if h})


def documents_by_id(zhiku: Zhiku, document_ids: Collection[str]) -> dict[str, Document]:
    """The documents of ``document_ids`` that exist, by id."""
    found: dict[str, Document] = {}
    with zhiku.db.session() as session:
        for document_id in document_ids:
            document = session.get(Document, document_id)
            if document is not None:
                found[document_id] = document
    return found
