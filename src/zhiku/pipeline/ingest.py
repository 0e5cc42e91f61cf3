"""Ingestion of a group of documents: parse → chunk → dedup → embed (cached) → index → flip the active version.

The job runner hands over several queued ingestion jobs of one knowledge base at once (see
:meth:`zhiku.jobs.runner.JobRunner.claim_companions`). Their chunks are embedded together in full model
batches, and their rows and vectors are written in a few statements, so many small documents cost about what
their chunks cost the model. Each job still ends on its own: a document that cannot be parsed fails alone,
a cancelled one drops out, and when the shared stage fails each document is retried alone, so one culprit
cannot fail its companions.

Idempotent per (document, version): chunk ids are derived from (document, version, ordinal), chunk rows of
the version are rewritten, and vectors are upserted by id, so a job resumed after a crash converges to the
same state as an uninterrupted one. A new version becomes searchable in one metadata transaction (the
flip); only then are the old version's vectors and chunks deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, insert, select, update

from zhiku.core import Zhiku
from zhiku.documents.chunking import chunk_document
from zhiku.documents.sandbox import ParseInterruptedError
from zhiku.documents.types import ChunkSpan, ParsedDocument
from zhiku.embedding.base import Embedder
from zhiku.errors import CorruptDocumentError
from zhiku.jobs.runner import GroupProgress, JobCancelledError, JobDeferredError, Outcomes
from zhiku.pipeline.auto_tags import kb_labels, tag_documents
from zhiku.pipeline.document_vectors import pooled, save_document_vectors
from zhiku.pipeline.duplicate_scan import flag_near_duplicates
from zhiku.pipeline.embed import embed_with_cache, text_hash
from zhiku.pipeline.ocr import read_scanned_pages
from zhiku.pipeline.points import chunk_id, chunk_points, embedded_text
from zhiku.pipeline.reindex import reindex_running
from zhiku.storage.models import Chunk, Document, DocumentStatus, Job, KnowledgeBase, utcnow
from zhiku.storage.vectors.base import VectorPoint

log = logging.getLogger(__name__)


@dataclass
class _Prepared:
    """A parsed and chunked document version, ready to be embedded and indexed."""

    job_id: str
    document_id: str
    version: int
    sha: str
    parsed: ParsedDocument
    spans: list[ChunkSpan]


def ingest_documents(zhiku: Zhiku, jobs: Sequence[Job], progress: GroupProgress) -> Outcomes:
    """Ingest the document versions of ``jobs`` (one knowledge base) together; return each job's outcome.

    An outcome is ``None`` when the job is done (ingested, or nothing left to do because the document was
    deleted or superseded), else the exception that ended it, which the runner turns into failed / retried /
    cancelled / deferred.
    """
    outcomes: Outcomes = {}
    started = _start(zhiku, jobs, outcomes)
    if not started:
        return outcomes
    kb, pending = started
    cancelled = progress.report("parsing", 0.02, force=True)
    embedder = zhiku.embedder_for(kb)
    prepared: list[_Prepared] = []
    for job, document in pending:
        if job.id in cancelled:
            outcomes[job.id] = JobCancelledError()
            continue
        try:
            prepared.append(_prepare(zhiku, kb, embedder, job, document, progress))
        except Exception as exc:  # noqa: BLE001 - this document's own outcome; its companions go on
            outcomes[job.id] = exc
    _index_isolated(zhiku, kb, embedder, prepared, progress, outcomes)
    return outcomes


def _start(
    zhiku: Zhiku, jobs: Sequence[Job], outcomes: Outcomes
) -> tuple[KnowledgeBase, list[tuple[Job, Document]]] | None:
    """Mark the still-pending document versions as parsing; settle the jobs that have nothing to do."""
    pending: list[tuple[Job, Document]] = []
    with zhiku.db.session() as session:
        kb = session.get(KnowledgeBase, jobs[0].kb_id) if jobs[0].kb_id else None
        if kb is not None and reindex_running(zhiku, kb.id):
            for job in jobs:
                outcomes[job.id] = JobDeferredError("waiting for the re-index of this knowledge base to finish")
            return None
        ids = [job.document_id for job in jobs if job.document_id]
        documents = {d.id: d for d in session.scalars(select(Document).where(Document.id.in_(ids)))}
        for job in jobs:
            document = documents.get(job.document_id or "")
            if kb is None or document is None or document.pending_version != int(job.payload["version"]):
                outcomes[job.id] = None  # deleted while queued, or superseded by a newer upload
                continue
            document.status = DocumentStatus.parsing
            pending.append((job, document))
    return (kb, pending) if kb is not None and pending else None


def _prepare(
    zhiku: Zhiku, kb: KnowledgeBase, embedder: Embedder, job: Job, document: Document, progress: GroupProgress
) -> _Prepared:
    """Parse (in a child process, within the parsing budget) and chunk one document version.

    A cancel of the job ends its parse at once, as does the runner stopping (the job then resumes later).
    """
    sha = str(job.payload["sha256"])
    blob = zhiku.blobs.path_for(sha)
    if not blob.is_file():
        raise CorruptDocumentError(f"{document.filename}: the stored file is missing (blob {sha[:12]})")
    try:
        parsed = zhiku.parsers.parse(
            blob, document.path, should_stop=lambda: job.id in progress.report("parsing", 0.05)
        )
        if parsed.pages_needing_ocr:
            parsed = read_scanned_pages(
                zhiku, job.id, blob, document.filename, sha, parsed, _ocr_reporter(progress.only([job.id]))
            )
    except ParseInterruptedError:
        raise JobCancelledError from None
    spans = chunk_document(parsed, embedder.tokenizer, chunk_tokens=kb.chunk_tokens, overlap_tokens=kb.chunk_overlap)
    return _Prepared(job.id, document.id, int(job.payload["version"]), sha, parsed, spans)


def _ocr_reporter(progress: GroupProgress) -> Callable[[int, int], bool]:
    """The OCR stage's report of one job: stage "ocr", the pages read in its payload; true once it is cancelled."""
    last = -1

    def report(done: int, total: int) -> bool:
        nonlocal last
        details = {"ocr_pages_done": done, "ocr_pages": total} if done != last else None
        cancelled = progress.report("ocr", 0.02 + 0.08 * done / max(1, total), force=done != last, details=details)
        last = done
        return bool(cancelled)

    return report


def _index_isolated(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    embedder: Embedder,
    prepared: list[_Prepared],
    progress: GroupProgress,
    outcomes: Outcomes,
) -> None:
    """Index the group; if that fails, index each document alone so only the culprit fails."""
    if not prepared:
        return
    try:
        outcomes.update(_index(zhiku, kb, embedder, prepared, progress))
    except Exception as exc:  # noqa: BLE001 - reported per job below
        if len(prepared) == 1:
            outcomes[prepared[0].job_id] = exc
            return
        log.warning("indexing %d documents together failed (%s); indexing them one by one", len(prepared), exc)
        for item in prepared:
            _index_isolated(zhiku, kb, embedder, [item], progress.only([item.job_id]), outcomes)


def _index(
    zhiku: Zhiku, kb: KnowledgeBase, embedder: Embedder, prepared: list[_Prepared], progress: GroupProgress
) -> Outcomes:
    """Save chunk rows, embed, upsert the vectors and flip the versions of the documents in ``prepared``."""
    outcomes: Outcomes = {}
    saved = _drop_cancelled(prepared, progress.report("chunking", 0.1, force=True), outcomes)
    if not saved:
        return outcomes
    _save_chunks(zhiku, saved)  # also moves the documents to status "embedding"
    spans = [span for item in saved for span in item.spans]
    total = max(1, len(spans))
    vectors = embed_with_cache(
        zhiku,
        kb,
        embedder,
        [embedded_text(span) for span in spans],
        lambda done: progress.report("embedding", 0.1 + 0.8 * done / total),
        [span.tokens for span in spans],
    )
    live = _drop_cancelled(saved, progress.report("indexing", 0.92, force=True), outcomes)
    keep = {item.job_id for item in live}
    points: list[VectorPoint] = []
    document_vectors: dict[str, np.ndarray] = {}
    offset = 0
    for item in saved:
        if item.job_id in keep:
            own = vectors[offset : offset + len(item.spans)]
            points.extend(chunk_points(kb.id, item.document_id, item.version, item.spans, own))
            if item.spans:
                document_vectors[item.document_id] = pooled(own, [max(1, span.tokens) for span in item.spans])
        offset += len(item.spans)
    zhiku.vectors.upsert(kb.collection, points)
    for document_id, old_version in _flip(zhiku, kb, live, document_vectors, outcomes):
        remove_version(zhiku, kb, document_id, old_version)
    _check_near_duplicates(zhiku, kb, {item.document_id: item.job_id for item in live})
    _auto_tag(zhiku, kb, [item.document_id for item in live])
    return outcomes


def _check_near_duplicates(zhiku: Zhiku, kb: KnowledgeBase, jobs_by_document: dict[str, str]) -> None:
    """Flag the new versions that nearly duplicate another document of the knowledge base (their job's outcome and
    warnings); never refused, and a failure of the check does not fail the ingestion."""
    if not zhiku.settings.near_duplicate_check:
        return
    try:
        flag_near_duplicates(zhiku, kb, jobs_by_document, zhiku.settings.near_duplicate_threshold)
    except Exception:  # the documents are ingested; the flag is advice
        log.warning("near-duplicate check of %d documents failed", len(jobs_by_document), exc_info=True)


def _auto_tag(zhiku: Zhiku, kb: KnowledgeBase, document_ids: list[str]) -> None:
    """Tag the new versions with the knowledge base's auto-tag labels, if it has any. Tags are an extra: a failure
    here is logged and the documents stay ingested (``zhiku tags run`` tags them later)."""
    try:
        if document_ids and kb_labels(zhiku, kb):
            tag_documents(zhiku, kb, document_ids)
    except Exception:  # tags are an extra (see the docstring)
        log.warning("auto-tagging %d new documents of %s failed", len(document_ids), kb.name, exc_info=True)


def _drop_cancelled(items: list[_Prepared], cancelled: set[str], outcomes: Outcomes) -> list[_Prepared]:
    """The items whose job was not cancelled; the cancelled ones get their outcome."""
    for item in items:
        if item.job_id in cancelled:
            outcomes[item.job_id] = JobCancelledError()
    return [item for item in items if item.job_id not in cancelled]


def _flip(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    items: list[_Prepared],
    document_vectors: dict[str, np.ndarray],
    outcomes: Outcomes,
) -> list[tuple[str, int]]:
    """Make the new versions the searchable ones in one transaction, with their document vectors; return the
    (document, old version) pairs."""
    replaced: list[tuple[str, int]] = []
    superseded: list[_Prepared] = []
    with zhiku.db.session() as session:
        ids = [item.document_id for item in items]
        documents = {d.id: d for d in session.scalars(select(Document).where(Document.id.in_(ids)))}
        job_ids = [item.job_id for item in items]
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        vectors: dict[str, tuple[int, np.ndarray]] = {}
        for item in items:
            outcomes[item.job_id] = None
            document = documents.get(item.document_id)
            if document is None or document.pending_version != item.version:
                superseded.append(item)  # deleted or re-uploaded meanwhile: this version never becomes visible
                continue
            if document.version and document.version != item.version:
                replaced.append((document.id, document.version))
            document.version, document.content_hash = item.version, item.sha
            document.pending_version = document.pending_hash = None
            document.status, document.error = DocumentStatus.ready, None
            document.mime_type, document.title = item.parsed.mime_type, item.parsed.title
            document.pages, document.chunk_count = len(item.parsed.pages), len(item.spans)
            document.warnings = list(item.parsed.warnings)
            document.ocr_pages = {str(page): confidence for page, confidence in item.parsed.ocr_pages.items()}
            document.updated_at = utcnow()
            if item.document_id in document_vectors:
                vectors[item.document_id] = (item.version, document_vectors[item.document_id])
            job = jobs.get(item.job_id)
            if job is not None:  # what the progress bars count (the CLI's, embedded and through a server)
                job.payload = {**job.payload, "embedded": len(item.spans)}
        save_document_vectors(session, kb, vectors)
    for item in superseded:
        zhiku.vectors.delete(kb.collection, document_id=item.document_id, version=item.version)
    return replaced


def remove_version(zhiku: Zhiku, kb: KnowledgeBase, document_id: str, version: int) -> None:
    """Delete one version's vectors, then its chunk rows (vectors first: rows are the truth to rebuild from)."""
    zhiku.vectors.delete(kb.collection, document_id=document_id, version=version)
    with zhiku.db.session() as session:
        session.execute(delete(Chunk).where(Chunk.document_id == document_id, Chunk.version == version))


def _save_chunks(zhiku: Zhiku, items: list[_Prepared]) -> None:
    """Rewrite the chunk rows of each item's version, all in one transaction and one multi-row insert."""
    rows = [
        {
            "id": chunk_id(item.document_id, item.version, span.ordinal),
            "document_id": item.document_id,
            "version": item.version,
            "ordinal": span.ordinal,
            "text": span.text,
            "tokens": span.tokens,
            "page_start": span.page_start,
            "page_end": span.page_end,
            "char_start": span.start,
            "char_end": span.end,
            "heading_path": list(span.heading_path),
            "context": span.context,
            "text_hash": text_hash(embedded_text(span)),  # the embedding cache's key
        }
        for item in items
        for span in item.spans
    ]
    by_version: dict[int, list[str]] = {}
    for item in items:
        by_version.setdefault(item.version, []).append(item.document_id)
    with zhiku.db.session() as session:
        session.execute(
            update(Document)
            .where(Document.id.in_([item.document_id for item in items]))
            .values(status=DocumentStatus.embedding)
            .execution_options(synchronize_session=False)
        )
        for version, document_ids in by_version.items():  # leftovers of an interrupted run of these versions
            session.execute(delete(Chunk).where(Chunk.document_id.in_(document_ids), Chunk.version == version))
        if rows:
            session.execute(insert(Chunk.metadata.tables[Chunk.__tablename__]), rows)  # Core: no ORM work per row
