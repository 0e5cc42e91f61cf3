"""Job tasks. ``ingest_document``: parse → chunk → dedup → embed (cached) → index → flip the active version.

Idempotent per (document, version): chunk ids are derived from (document, version, ordinal), chunk rows of
the version are rewritten, and vectors are upserted by id, so a job resumed after a crash converges to the
same state as an uninterrupted one. The new version becomes searchable in one metadata transaction (the
flip); only then are the old version's vectors and chunks deleted.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from zhiku.core import Zhiku
from zhiku.documents.chunking import chunk_document
from zhiku.documents.parsers import parse_file
from zhiku.documents.types import ChunkSpan
from zhiku.embedding.base import Embedder
from zhiku.errors import CorruptDocumentError
from zhiku.jobs.reindex import REINDEX_KIND, reindex_kb, reindex_running
from zhiku.jobs.runner import JobContext, JobDeferredError
from zhiku.storage.models import Chunk, Document, DocumentStatus, EmbeddingCacheEntry, Job, KnowledgeBase, utcnow
from zhiku.storage.vectors.base import VectorPoint

CHUNK_NAMESPACE = uuid.UUID("5b0e6f1c-64e5-4b8a-9a3e-6f0d2f1c7a10")
EMBED_BATCH = 64


def chunk_id(document_id: str, version: int, ordinal: int) -> str:
    """Deterministic chunk (and vector point) id, so that retries overwrite instead of duplicating."""
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{document_id}:{version}:{ordinal}"))


def text_hash(text: str) -> str:
    """SHA-256 of a chunk's text (dedup and embedding-cache key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_key(kb: KnowledgeBase) -> str:
    """Embedding-cache namespace: documents are embedded without instruction, so model and dimension."""
    return f"{kb.embedding_model}|{kb.dimension}"


def ingest_document(zhiku: Zhiku, job: Job, context: JobContext) -> None:
    """Ingest one version of one document (see the module docstring)."""
    with zhiku.db.session() as session:
        found = session.get(Document, job.document_id)
        if found is None:
            return  # deleted while queued
        document = found
        kb = session.get_one(KnowledgeBase, document.kb_id)
        if reindex_running(zhiku, kb.id):
            raise JobDeferredError("waiting for the re-index of this knowledge base to finish")
        version = int(job.payload["version"])
        sha = str(job.payload["sha256"])
        if document.pending_version != version:
            return  # superseded by a newer upload; nothing of this version was made searchable
        document.status = DocumentStatus.parsing
    context.progress("parsing", 0.02, force=True)
    blob = zhiku.blobs.path_for(sha)
    if not blob.is_file():
        raise CorruptDocumentError(f"{document.filename}: the stored file is missing (blob {sha[:12]})")
    parsed = parse_file(blob, filename=document.filename)
    embedder = zhiku.embedder_for(kb)
    spans = chunk_document(parsed, embedder.tokenizer, chunk_tokens=kb.chunk_tokens, overlap_tokens=kb.chunk_overlap)
    context.progress("chunking", 0.1, chunks=len(spans))
    _save_chunks(zhiku, document.id, version, spans)  # also moves the document to status "embedding"
    vectors = embed_with_cache(
        zhiku, kb, embedder, [s.text for s in spans],
        lambda done: context.progress("embedding", 0.1 + 0.8 * done / max(1, len(spans)), embedded=done),
    )  # fmt: skip
    context.progress("indexing", 0.92)
    points = [
        VectorPoint(
            id=chunk_id(document.id, version, span.ordinal),
            vector=vector,
            text=span.text,
            payload={
                "kb_id": kb.id,
                "document_id": document.id,
                "version": version,
                "ordinal": span.ordinal,
                "page_start": span.page_start,
                "page_end": span.page_end,
            },
        )
        for span, vector in zip(spans, vectors, strict=True)
    ]
    zhiku.vectors.upsert(kb.collection, points)

    with zhiku.db.session() as session:  # the flip: one transaction makes the new version the searchable one
        document = session.get_one(Document, document.id)
        if document.pending_version != version:
            zhiku.vectors.delete(kb.collection, document_id=document.id, version=version)
            return
        old_version = document.version
        document.version, document.content_hash = version, sha
        document.pending_version = document.pending_hash = None
        document.status, document.error = DocumentStatus.ready, None
        document.mime_type, document.title = parsed.mime_type, parsed.title
        document.pages, document.chunk_count = len(parsed.pages), len(spans)
        document.warnings = list(parsed.warnings)
        document.updated_at = utcnow()
    if old_version and old_version != version:
        remove_version(zhiku, kb, document.id, old_version)


def remove_version(zhiku: Zhiku, kb: KnowledgeBase, document_id: str, version: int) -> None:
    """Delete one version's vectors, then its chunk rows (vectors first: rows are the truth to rebuild from)."""
    zhiku.vectors.delete(kb.collection, document_id=document_id, version=version)
    with zhiku.db.session() as session:
        session.execute(delete(Chunk).where(Chunk.document_id == document_id, Chunk.version == version))


def _save_chunks(zhiku: Zhiku, document_id: str, version: int, spans: list[ChunkSpan]) -> None:
    with zhiku.db.session() as session:
        session.get_one(Document, document_id).status = DocumentStatus.embedding
        session.execute(delete(Chunk).where(Chunk.document_id == document_id, Chunk.version == version))
        if spans:  # one executemany instead of an ORM object per chunk
            session.execute(
                insert(Chunk),
                [
                    {
                        "id": chunk_id(document_id, version, span.ordinal),
                        "document_id": document_id,
                        "version": version,
                        "ordinal": span.ordinal,
                        "text": span.text,
                        "tokens": span.tokens,
                        "page_start": span.page_start,
                        "page_end": span.page_end,
                        "char_start": span.start,
                        "char_end": span.end,
                        "heading_path": list(span.heading_path),
                        "text_hash": text_hash(span.text),
                    }
                    for span in spans
                ],
            )


def embed_with_cache(
    zhiku: Zhiku, kb: KnowledgeBase, embedder: Embedder, texts: list[str], on_progress: Callable[[int], None]
) -> np.ndarray:
    """Embed ``texts`` as documents, reusing cached vectors of identical texts and embedding each new one once."""
    key = model_key(kb)
    hashes = [text_hash(t) for t in texts]
    unique = list(dict.fromkeys(hashes))
    found: dict[str, np.ndarray] = {}
    with zhiku.db.session() as session:
        for start in range(0, len(unique), 500):
            rows = session.execute(
                select(EmbeddingCacheEntry.text_hash, EmbeddingCacheEntry.vector).where(
                    EmbeddingCacheEntry.model_key == key, EmbeddingCacheEntry.text_hash.in_(unique[start : start + 500])
                )
            )
            found.update({h: np.frombuffer(v, dtype="<f4") for h, v in rows})
    missing = [h for h in unique if h not in found]
    text_of = dict(zip(hashes, texts, strict=True))
    uses = Counter(hashes)
    done = len(texts) - sum(uses[h] for h in missing)
    on_progress(done)
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        result = embedder.embed([text_of[h] for h in batch], input_type="document", dimensions=kb.dimension)
        found.update(zip(batch, result.vectors, strict=True))
        _cache_vectors(zhiku, key, batch, result.vectors)
        done += sum(uses[h] for h in batch)
        on_progress(done)
    return np.stack([found[h] for h in hashes]) if hashes else np.zeros((0, kb.dimension), dtype=np.float32)


def _cache_vectors(zhiku: Zhiku, key: str, hashes: list[str], vectors: np.ndarray) -> None:
    """Insert cache rows in one statement; rows another worker inserted meanwhile are left as they are."""
    rows = [
        {"model_key": key, "text_hash": h, "vector": v.astype("<f4").tobytes(), "created_at": utcnow()}
        for h, v in zip(hashes, vectors, strict=True)
    ]
    try:
        with zhiku.db.session() as session:
            session.execute(insert(EmbeddingCacheEntry), rows)
    except IntegrityError:  # a concurrent job cached some of the same texts: fall back to row by row
        with zhiku.db.session() as session:
            for row in rows:
                session.merge(EmbeddingCacheEntry(**row))


TASKS: dict[str, Callable[[Zhiku, Job, JobContext], None]] = {
    "ingest_document": ingest_document,
    REINDEX_KIND: reindex_kb,
}
