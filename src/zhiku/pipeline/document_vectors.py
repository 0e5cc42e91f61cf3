"""Document vectors: a whole document version as one vector, its chunks' vectors pooled (token-weighted mean of
the L2-normalised chunk vectors, normalised again).

Ingestion stores the vector of each new version as it makes the version searchable (:func:`pooled`, in the flip).
Documents indexed before document vectors existed, or whose stored vector is of an older version, are pooled on
first use from their chunks' vectors in the embedding cache (every chunk's vector is there, by model and text
hash), and stored; so are those pooled under another model or dimension before a re-index. Nothing is embedded again.

Whole-document embedding (one pass over the document's text with a long-context model such as Qwen3's 32k
tokens) is not done: pooling costs nothing at ingestion and needs no second model pass over long documents.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiku.core import Zhiku
from zhiku.pipeline.embed import model_key
from zhiku.storage.models import Chunk, Document, DocumentStatus, DocumentVector, EmbeddingCacheEntry, KnowledgeBase

_BATCH = 500
_WHOLE_KB_READ = 2000
"""From this many vectors to read, one query over the knowledge base's rows replaces lists of ids."""


def pooled(vectors: np.ndarray, weights: Sequence[int]) -> np.ndarray:
    """The token-weighted mean of the L2-normalised rows of ``vectors``, L2-normalised (float32)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0, 1.0, norms)
    mean = (unit * np.asarray(weights, dtype=np.float32).reshape(-1, 1)).sum(axis=0)
    norm = float(np.linalg.norm(mean))
    result: np.ndarray = (mean / norm if norm > 0 else mean).astype(np.float32)
    return result


def save_document_vectors(session: Session, kb: KnowledgeBase, vectors: Mapping[str, tuple[int, np.ndarray]]) -> None:
    """Store (or replace) the vectors of documents (id → its version and vector) in ``session``'s transaction:
    the existing rows are read in one query per :data:`_BATCH` documents, not one each."""
    key = model_key(kb)
    ids = list(vectors)
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        existing = {
            row.document_id: row
            for row in session.scalars(select(DocumentVector).where(DocumentVector.document_id.in_(batch)))
        }
        for document_id in batch:
            version, vector = vectors[document_id]
            data = np.asarray(vector, dtype="<f4").tobytes()
            row = existing.get(document_id)
            if row is None:
                session.add(DocumentVector(document_id=document_id, version=version, model_key=key, vector=data))
            else:
                row.version, row.model_key, row.vector = version, key, data


def document_vectors(
    zhiku: Zhiku, kb: KnowledgeBase, document_ids: Collection[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """The ready documents of ``kb`` (only those of ``document_ids`` when given) that have a vector, and their
    vectors as the rows of a float32 matrix (``len(ids)`` × the knowledge base's dimension)."""
    key = model_key(kb)
    space = (kb.id, key)
    # one reader per knowledge base at a time: a second one (another ingestion worker) then finds the vectors the
    # first read in memory instead of reading them all again beside it
    with zhiku.document_vector_cache.reading(space), zhiku.db.session() as session:
        connection = session.connection()  # Core rows: tens of thousands of them, no ORM objects needed
        query = select(Document.id, Document.version).where(
            Document.kb_id == kb.id, Document.status == DocumentStatus.ready, Document.version > 0
        )
        if document_ids is not None:
            query = query.where(Document.id.in_(list(document_ids)))
        versions: dict[str, int] = dict(connection.execute(query).tuples().all())
        stored = zhiku.document_vector_cache.take(space, versions, complete=document_ids is None)
        ids = [document_id for document_id in versions if document_id not in stored]
        read: dict[str, tuple[int, np.ndarray]] = {}
        columns = (DocumentVector.document_id, DocumentVector.version, DocumentVector.model_key, DocumentVector.vector)
        if len(ids) > _WHOLE_KB_READ:  # most of them: one pass over the knowledge base's rows
            whole_kb = select(*columns).join(Document, Document.id == DocumentVector.document_id)
            batches = [whole_kb.where(Document.kb_id == kb.id)]
        else:  # the vectors not held in memory only
            batches = [
                select(*columns).where(DocumentVector.document_id.in_(ids[start : start + _BATCH]))
                for start in range(0, len(ids), _BATCH)
            ]
        for batch in batches:
            for document_id, version, row_key, vector in connection.execute(batch).tuples().all():
                if version == versions.get(document_id) and row_key == key and document_id not in stored:
                    read[document_id] = (version, np.frombuffer(vector, dtype="<f4"))
        stored.update((document_id, vector) for document_id, (_, vector) in read.items())
        missing = {document_id: version for document_id, version in versions.items() if document_id not in stored}
        if missing:
            pooled_now = _pool_from_cache(session, kb, missing)
            stored.update(pooled_now)
            read.update((document_id, (versions[document_id], vector)) for document_id, vector in pooled_now.items())
        zhiku.document_vector_cache.put(space, read)
    ordered = sorted(stored)
    if not ordered:
        return [], np.zeros((0, kb.dimension), dtype=np.float32)
    return ordered, np.stack([stored[document_id] for document_id in ordered])


def _pool_from_cache(session: Session, kb: KnowledgeBase, versions: dict[str, int]) -> dict[str, np.ndarray]:
    """Pool and store the vectors of the documents in ``versions`` (id → version) from the embedding cache."""
    chunks: dict[str, list[tuple[str, int]]] = {}
    ids = list(versions)
    for start in range(0, len(ids), _BATCH):
        rows = session.execute(
            select(Chunk.document_id, Chunk.version, Chunk.text_hash, Chunk.tokens).where(
                Chunk.document_id.in_(ids[start : start + _BATCH])
            )
        )
        for document_id, version, hash_, tokens in rows:
            if version == versions[document_id]:
                chunks.setdefault(document_id, []).append((hash_, tokens))
    hashes = sorted({hash_ for pairs in chunks.values() for hash_, _ in pairs})
    cached: dict[str, np.ndarray] = {}
    key = model_key(kb)
    for start in range(0, len(hashes), _BATCH):
        entries = session.execute(
            select(EmbeddingCacheEntry.text_hash, EmbeddingCacheEntry.vector).where(
                EmbeddingCacheEntry.model_key == key, EmbeddingCacheEntry.text_hash.in_(hashes[start : start + _BATCH])
            )
        )
        cached.update((hash_, np.frombuffer(vector, dtype="<f4")) for hash_, vector in entries)
    pooled_vectors: dict[str, np.ndarray] = {}
    for document_id, pairs in chunks.items():
        found = [(cached[hash_], tokens) for hash_, tokens in pairs if hash_ in cached]
        if found:
            pooled_vectors[document_id] = pooled(np.stack([v for v, _ in found]), [max(1, t) for _, t in found])
    save_document_vectors(session, kb, {d: (versions[d], vector) for d, vector in pooled_vectors.items()})
    return pooled_vectors
