"""Re-embed a knowledge base with another model or dimension, in the background, and switch atomically.

The job builds a new vector collection from the chunk rows (the metadata database is the truth, so nothing is
parsed again) while searches keep answering from the old collection with the old model. One metadata
transaction then points the knowledge base at the new collection, model and dimension; the old collection is
dropped afterwards. Ingestion of the knowledge base waits while a re-index runs (its jobs are deferred, not
failed) and continues with the new model after the switch. Resumable: the new collection's name and every
point id are derived from the job, so a retried job overwrites what it already wrote.
"""

from __future__ import annotations

from sqlalchemy import select

from zhiku.core import Zhiku
from zhiku.embedding.models import resolve_api_model, resolve_model
from zhiku.errors import ConflictError
from zhiku.jobs.dispatch import dispatch
from zhiku.jobs.kinds import REINDEX_KIND
from zhiku.jobs.runner import JobContext, JobDeferredError
from zhiku.pipeline.embed import embed_with_cache
from zhiku.pipeline.points import chunk_points, embedded_text
from zhiku.storage.models import Chunk, Document, DocumentStatus, Job, JobStatus, KnowledgeBase

ACTIVE = (JobStatus.queued, JobStatus.running)


def start_reindex(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    *,
    model: str | None = None,
    dimension: int | None = None,
    from_api: bool = False,
    created_by: str | None = None,
) -> Job:
    """Queue a re-index of ``kb`` (default: same model and dimension, e.g. to rebuild a damaged index).

    ``from_api``: an API caller names the model; besides the knowledge base's own model, only the models
    :func:`~zhiku.embedding.models.resolve_api_model` allows."""
    if model is not None and model != kb.embedding_model and from_api:
        spec = resolve_api_model(model, zhiku.settings)
    else:
        spec = resolve_model(model or kb.embedding_model)
    if dimension is None and spec.name == kb.embedding_model:
        dimension = kb.dimension
    target = spec.check_dimension(dimension)
    with zhiku.db.session() as session:
        running = session.scalar(
            select(Job.id).where(Job.kb_id == kb.id, Job.kind == REINDEX_KIND, Job.status.in_(ACTIVE))
        )
        if running is not None:
            raise ConflictError(f"knowledge base {kb.name!r} is already being re-indexed (job {running})")
        job = Job(
            kind=REINDEX_KIND,
            kb_id=kb.id,
            max_attempts=zhiku.settings.job_max_attempts,
            payload={"model": spec.name, "dimension": target, "from_collection": kb.collection},
            created_by=created_by,
        )
        session.add(job)
        session.flush()
    dispatch(zhiku, [job.id])
    return job


def reindex_running(zhiku: Zhiku, kb_id: str) -> bool:
    """True while a re-index of the knowledge base is running (ingestion then waits)."""
    with zhiku.db.session() as session:
        return (
            session.scalar(
                select(Job.id).where(Job.kb_id == kb_id, Job.kind == REINDEX_KIND, Job.status == JobStatus.running)
            )
            is not None
        )


def reindex_kb(zhiku: Zhiku, job: Job, context: JobContext) -> None:
    """The job: embed every active chunk into a new collection, then switch the knowledge base to it."""
    with zhiku.db.session() as session:
        kb = session.get(KnowledgeBase, job.kb_id)
        if kb is None:
            return  # deleted meanwhile
        busy = session.scalar(
            select(Job.id).where(Job.kb_id == kb.id, Job.kind != REINDEX_KIND, Job.status == JobStatus.running)
        )
    if busy is not None:
        raise JobDeferredError("waiting for running ingestion jobs of this knowledge base to finish")
    spec = resolve_model(str(job.payload["model"]))
    dimension = int(job.payload["dimension"])
    old_collection = str(job.payload["from_collection"])
    new_collection = f"kb_{kb.id}_{job.id[:12]}"
    index_dimension = kb.index_dimension if spec.matryoshka and (kb.index_dimension or dimension) < dimension else None
    if kb.collection != new_collection:  # not yet switched (a retry after the switch only cleans up)
        _build(zhiku, kb, context, spec.name, dimension, index_dimension, new_collection)
        with zhiku.db.session() as session:  # the switch
            row = session.get_one(KnowledgeBase, kb.id)
            row.collection, row.embedding_model, row.dimension = new_collection, spec.name, dimension
            row.index_dimension = index_dimension
            row.instruction = row.instruction if spec.instruction_aware else None
    context.progress("cleaning up", 0.97, force=True)
    if old_collection != new_collection and zhiku.vectors.has_collection(old_collection):
        zhiku.vectors.delete_collection(old_collection)
    zhiku.vectors.optimize(new_collection)


def _build(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    context: JobContext,
    model: str,
    dimension: int,
    index_dimension: int | None,
    collection: str,
) -> None:
    zhiku.vectors.ensure_collection(collection, dimension, index_dimension=index_dimension)
    target = KnowledgeBase(embedding_model=model, dimension=dimension)  # cache namespace only; never saved
    embedder = zhiku.embedder(model)
    with zhiku.db.session() as session:
        documents = list(
            session.execute(
                select(Document.id, Document.version).where(
                    Document.kb_id == kb.id, Document.status == DocumentStatus.ready, Document.version > 0
                )
            )
        )
    total = max(1, len(documents))
    for done, (document_id, version) in enumerate(documents):
        with zhiku.db.session() as session:
            chunks = list(
                session.scalars(
                    select(Chunk)
                    .where(Chunk.document_id == document_id, Chunk.version == version)
                    .order_by(Chunk.ordinal)
                )
            )
        if not chunks:
            continue
        vectors = embed_with_cache(zhiku, target, embedder, [embedded_text(c) for c in chunks], lambda _: None)
        zhiku.vectors.upsert(collection, chunk_points(kb.id, document_id, version, chunks, vectors))
        context.progress("embedding", 0.95 * (done + 1) / total, documents=done + 1, of=total)
