"""Knowledge bases and their documents: create, list, delete, register files for ingestion, dedup, versions."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from zhiku.core import Zhiku
from zhiku.embedding.instructions import resolve_instruction
from zhiku.embedding.models import resolve_api_model, resolve_model
from zhiku.errors import ConflictError, InvalidInputError, NotFoundError, ZhikuError
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

NAME_PATTERN = re.compile(r"^[\w][\w.\- ]{0,99}$", re.UNICODE)


@dataclass(frozen=True)
class KnowledgeBaseStats:
    """Counts of a knowledge base's documents by status, and of its active chunks."""

    documents: dict[str, int]
    chunks: int


@dataclass(frozen=True)
class Registration:
    """What happened to one file handed to :func:`register_file`."""

    source: str
    outcome: str
    """``queued`` (new or changed: a job will ingest it), ``unchanged``, ``duplicate`` or ``failed``."""
    document_id: str | None = None
    job_id: str | None = None
    message: str = ""


def create_knowledge_base(
    zhiku: Zhiku,
    name: str,
    *,
    model: str | None = None,
    dimension: int | None = None,
    index_dimension: int | None = None,
    instruction: str | None = None,
    chunk_tokens: int | None = None,
    chunk_overlap: int | None = None,
    description: str = "",
    tenant_id: str = "default",
    from_api: bool = False,
) -> KnowledgeBase:
    """Create a knowledge base; its model, dimension and instruction are fixed for its lifetime.

    ``index_dimension`` (Matryoshka models only) indexes a shorter prefix of each vector and rescores the best
    candidates at the full ``dimension``: less index memory for a small loss of recall. ``from_api``: the model
    name comes from an API caller, who may only name the models :func:`resolve_api_model` allows (the operator's
    commands may name any local model folder).
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name != name.strip():
        raise InvalidInputError(
            "knowledge base names are 1-100 characters: letters (any script), digits, '_', '-', '.', spaces; "
            f"got {name!r}",
            param="name",
        )
    settings = zhiku.settings
    if model is not None and from_api:
        spec = resolve_api_model(model, settings)
    else:
        spec = resolve_model(model or settings.embedding_model)
    dim = spec.check_dimension(dimension)
    if index_dimension is not None:
        if not spec.matryoshka or not isinstance(index_dimension, int):
            raise InvalidInputError(
                f"model {spec.name} is not a Matryoshka model: it cannot use a reduced index dimension",
                param="index_dimension",
            )
        if not (spec.min_dimension or 32) <= index_dimension < dim:
            raise InvalidInputError(
                f"index dimension must be {spec.min_dimension} to {dim - 1} (below the dimension {dim}), "
                f"got {index_dimension}",
                param="index_dimension",
            )
    task = None
    if instruction is not None:
        if not spec.instruction_aware:
            raise InvalidInputError(f"model {spec.name} does not take instructions", param="instruction")
        task = resolve_instruction(instruction)
    usable = spec.max_tokens - 2  # room for the model's special tokens
    size = chunk_tokens or min(settings.default_chunk_tokens, usable)  # the default fits short-context models
    overlap = settings.default_chunk_overlap if chunk_overlap is None else chunk_overlap
    if not 16 <= size <= usable:
        raise InvalidInputError(
            f"chunk size must be 16 to {usable} tokens for {spec.name}, got {size}", param="chunk_tokens"
        )
    if not 0 <= overlap < size // 2 + 1:
        raise InvalidInputError(
            f"chunk overlap must be 0 to {size // 2} tokens (half the chunk size), got {overlap}", param="chunk_overlap"
        )
    with zhiku.db.session() as session:
        taken = session.scalar(
            select(KnowledgeBase.id).where(KnowledgeBase.tenant_id == tenant_id, KnowledgeBase.name == name)
        )
        if taken:
            raise ConflictError(f"a knowledge base named {name!r} already exists")
        kb_id = new_id()
        kb = KnowledgeBase(
            id=kb_id,
            tenant_id=tenant_id,
            name=name,
            description=description,
            embedding_model=spec.name,
            dimension=dim,
            index_dimension=index_dimension,
            instruction=task,
            chunk_tokens=size,
            chunk_overlap=overlap,
            collection=f"kb_{kb_id}",
        )
        session.add(kb)
    zhiku.vectors.ensure_collection(kb.collection, dim, index_dimension=index_dimension)
    return kb


def list_knowledge_bases(zhiku: Zhiku, tenant_id: str = "default") -> list[KnowledgeBase]:
    """All knowledge bases of a tenant, by name."""
    with zhiku.db.session() as session:
        rows = session.scalars(
            select(KnowledgeBase).where(KnowledgeBase.tenant_id == tenant_id).order_by(KnowledgeBase.name)
        )
        return list(rows)


def get_knowledge_base(zhiku: Zhiku, name_or_id: str, tenant_id: str = "default") -> KnowledgeBase:
    """A knowledge base by name or id, or ``NotFoundError``."""
    with zhiku.db.session() as session:
        kb = session.scalar(
            select(KnowledgeBase).where(
                KnowledgeBase.tenant_id == tenant_id,
                (KnowledgeBase.name == name_or_id) | (KnowledgeBase.id == name_or_id),
            )
        )
    if kb is None:
        raise NotFoundError(f"no knowledge base named {name_or_id!r}")
    return kb


def knowledge_base_stats(zhiku: Zhiku, kb: KnowledgeBase) -> KnowledgeBaseStats:
    """Documents by status and the number of active chunks."""
    with zhiku.db.session() as session:
        by_status = dict(
            session.execute(
                select(Document.status, func.count()).where(Document.kb_id == kb.id).group_by(Document.status)
            ).all()
        )
        chunks = session.scalar(
            select(func.count())
            .select_from(Chunk)
            .join(Document, Chunk.document_id == Document.id)
            .where(Document.kb_id == kb.id, Chunk.version == Document.version)
        )
    return KnowledgeBaseStats({str(k): int(v) for k, v in by_status.items()}, int(chunks or 0))


def tenant_usage(zhiku: Zhiku, tenant_id: str) -> int:
    """Bytes of documents a tenant stores (its quota's measure)."""
    with zhiku.db.session() as session:
        used = session.scalar(
            select(func.coalesce(func.sum(Document.size_bytes), 0))
            .join(KnowledgeBase, Document.kb_id == KnowledgeBase.id)
            .where(KnowledgeBase.tenant_id == tenant_id)
        )
    return int(used or 0)


def update_knowledge_base(
    zhiku: Zhiku, kb: KnowledgeBase, *, name: str | None = None, description: str | None = None
) -> KnowledgeBase:
    """Rename a knowledge base (same name rules as at creation; unique within its tenant) or change its
    description; ``None`` leaves a field as it is."""
    if name is not None and (not isinstance(name, str) or not NAME_PATTERN.match(name) or name != name.strip()):
        raise InvalidInputError(f"invalid knowledge base name {name!r}", param="name")
    with zhiku.db.session() as session:
        row = session.get_one(KnowledgeBase, kb.id)
        if name is not None and name != row.name:
            taken = session.scalar(
                select(KnowledgeBase.id).where(KnowledgeBase.tenant_id == row.tenant_id, KnowledgeBase.name == name)
            )
            if taken:
                raise ConflictError(f"a knowledge base named {name!r} already exists")
            row.name = name
        if description is not None:
            row.description = description
        session.flush()
        return row


def delete_knowledge_base(zhiku: Zhiku, kb: KnowledgeBase) -> None:
    """Delete a knowledge base with its documents, chunks, jobs, vectors and unreferenced files."""
    with zhiku.db.session() as session:
        hashes = set(session.scalars(select(Document.content_hash).where(Document.kb_id == kb.id)))
        for job in session.scalars(select(Job).where(Job.kb_id == kb.id)):
            session.delete(job)
        session.execute(delete(Chunk).where(Chunk.document_id.in_(_doc_ids(session, kb.id))))
        for document in session.scalars(select(Document).where(Document.kb_id == kb.id)):
            session.delete(document)
        session.delete(session.get_one(KnowledgeBase, kb.id))
    zhiku.vectors.delete_collection(kb.collection)
    _drop_unreferenced_blobs(zhiku, hashes)


def _doc_ids(session: Session, kb_id: str) -> Any:
    return select(Document.id).where(Document.kb_id == kb_id)


def _drop_unreferenced_blobs(zhiku: Zhiku, hashes: set[str]) -> None:
    with zhiku.db.session() as session:
        for sha in hashes:
            used = session.scalar(
                select(func.count())
                .select_from(Document)
                .where((Document.content_hash == sha) | (Document.pending_hash == sha))
            )
            if not used:
                zhiku.blobs.delete(sha)


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
) -> Registration:
    """Store a file and queue its ingestion; report duplicates, unchanged files and unreadable ones.

    ``source`` identifies the document within the knowledge base (default: the resolved path); a file with a
    known source and new content becomes a new version of that document, replacing the old one atomically
    once ingested. ``filename`` (default: the file's name) is what users see; it is sanitised. ``labels`` are
    applied even when the content is unchanged; the document date defaults to the file's modification time.
    """
    return register_files(zhiku, kb, [NewFile(path, source, filename)], labels=labels)[0]


def register_files(
    zhiku: Zhiku, kb: KnowledgeBase, files: Sequence[Path | NewFile], *, labels: Labels | None = None
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

    try:
        with zhiku.db.session() as session:
            outcomes = _register_blobs(session, zhiku, kb, [item for _, item in stored], label)
            done = [(index, outcome) for (index, _), outcome in zip(stored, outcomes, strict=True)]
    except Exception:
        if len(stored) <= 1:
            raise
        done = []
        for index, item in stored:
            with zhiku.db.session() as session:
                done.append((index, _register_blobs(session, zhiku, kb, [item], label)[0]))
    for index, registration in done:
        results[index] = registration
    registrations = [r for r in results if isinstance(r, Registration)]
    dispatch(zhiku, [r.job_id for r in registrations if r.job_id])
    return registrations


FIRST_GROUP = 4
"""Files in the first registration group: few, so that a worker starts parsing them (and the model embedding them)
at once instead of waiting for a full group to be stored and registered."""


def group_size(zhiku: Zhiku, registered: int) -> int:
    """How many files to register in the next group, ``registered`` files having been handled before it."""
    size = zhiku.settings.ingest_batch_documents
    return min(FIRST_GROUP, size) if registered == 0 else size


def register_in_groups(
    zhiku: Zhiku, kb: KnowledgeBase, files: Sequence[Path | NewFile], *, labels: Labels | None = None
) -> list[Registration]:
    """:func:`register_files` a group at a time (:func:`group_size`), as ``zhiku ingest`` does: the first group's
    jobs are queued (and can start) while the rest are still being stored."""
    registrations: list[Registration] = []
    start = 0
    while start < len(files):
        end = start + group_size(zhiku, start)
        registrations += register_files(zhiku, kb, files[start:end], labels=labels)
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
        tags = (set(row.tags) | added) - removed
        metadata = {
            k: v for k, v in {**row.meta, **check_metadata(set_metadata or {})}.items() if k not in set(unset_metadata)
        }
        _apply_labels(row, sorted(tags), metadata, document_date)
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


def reingest_document(zhiku: Zhiku, kb: KnowledgeBase, document: Document) -> Registration:
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
    _drop_unreferenced_blobs(zhiku, {h for h in (document.content_hash, document.pending_hash) if h})


def unfinished_jobs(zhiku: Zhiku, kb_id: str, exclude: Collection[str] = ()) -> list[str]:
    """Ids of a knowledge base's queued and running jobs (e.g. interrupted by a crash), but those in ``exclude``."""
    with zhiku.db.session() as session:
        rows = session.scalars(
            select(Job.id).where(Job.kb_id == kb_id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
        return [job_id for job_id in rows if job_id not in exclude]


def job_progress(zhiku: Zhiku, job_ids: Sequence[str], finished: Collection[str]) -> tuple[int, int]:
    """How many of ``job_ids`` are in a ``finished`` status, and how many chunks they have embedded so far."""
    with zhiku.db.session() as session:
        done = session.scalar(
            select(func.count()).select_from(Job).where(Job.id.in_(job_ids), Job.status.in_(finished))
        )
        payloads = session.scalars(select(Job.payload).where(Job.id.in_(job_ids)))
        chunks = sum(int(p.get("embedded", 0)) for p in payloads)
    return done or 0, chunks


def documents_by_id(zhiku: Zhiku, document_ids: Collection[str]) -> dict[str, Document]:
    """The documents of ``document_ids`` that exist, by id."""
    found: dict[str, Document] = {}
    with zhiku.db.session() as session:
        for document_id in document_ids:
            document = session.get(Document, document_id)
            if document is not None:
                found[document_id] = document
    return found


def _jobs_of(tenant_id: str | None) -> Any:
    """Jobs, of one tenant's knowledge bases when ``tenant_id`` is given (another tenant's jobs are not found)."""
    query = select(Job)
    if tenant_id is not None:
        query = query.join(KnowledgeBase, Job.kb_id == KnowledgeBase.id).where(KnowledgeBase.tenant_id == tenant_id)
    return query


def list_jobs(
    zhiku: Zhiku,
    status: str | None = None,
    limit: int = 50,
    *,
    tenant_id: str | None = None,
    kb_id: str | None = None,
) -> list[tuple[Job, str | None]]:
    """The newest ``limit`` jobs (only those in ``status``, of ``tenant_id``, of knowledge base ``kb_id``, when
    given), each with its document's file name."""
    with zhiku.db.session() as session:
        query = _jobs_of(tenant_id).add_columns(Document.filename).outerjoin(Document, Job.document_id == Document.id)
        if status:
            query = query.where(Job.status == status)
        if kb_id:
            query = query.where(Job.kb_id == kb_id)
        rows = session.execute(query.order_by(Job.created_at.desc()).limit(limit)).all()
    return [(job, filename) for job, filename in rows]


def get_job(zhiku: Zhiku, job_id: str, *, tenant_id: str | None = None) -> Job:
    """The job of ``job_id`` or a unique prefix of it (among ``tenant_id``'s jobs when given)."""
    with zhiku.db.session() as session:
        job: Job = find_by_id(session, _jobs_of(tenant_id), Job.id, job_id, what="job")
    return job
