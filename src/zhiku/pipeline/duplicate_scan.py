"""Near-duplicates of a knowledge base's documents and chunks, read from the metadata database: document vectors
(:mod:`zhiku.pipeline.document_vectors`), chunk vectors from the embedding cache (by model and text hash; the
vector store is not read), texts from the chunk rows; and the check ingestion runs on each new version."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from zhiku.core import Zhiku
from zhiku.embedding.models import resolve_model
from zhiku.pipeline.document_vectors import document_vectors
from zhiku.pipeline.embed import model_key
from zhiku.pipeline.near_duplicates import MAX_TEXT_CHARS, Kind, cosine_blocks, matches_of, unit_rows
from zhiku.storage.models import Chunk, Document, DocumentStatus, EmbeddingCacheEntry, Job, KnowledgeBase

log = logging.getLogger(__name__)

_BATCH = 500
WARNING_PREFIX = "near-duplicate of "
"""How a document's near-duplicate warnings begin (one per match, replaced at each new version)."""


def is_matryoshka(kb: KnowledgeBase) -> bool:
    """Whether the knowledge base's model has meaningful prefixes (its coarse pass may compare one)."""
    try:
        return resolve_model(kb.embedding_model).matryoshka
    except Exception:  # noqa: BLE001 - a model no longer registered: compare the full vectors
        return False


def document_texts(zhiku: Zhiku, document_ids: Sequence[str]) -> dict[str, str]:
    """The text of each document's active version (its chunks' texts in order, up to ``MAX_TEXT_CHARS``)."""
    texts: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    with zhiku.db.session() as session:
        for start in range(0, len(document_ids), _BATCH):
            batch = list(document_ids[start : start + _BATCH])
            versions = dict(session.execute(select(Document.id, Document.version).where(Document.id.in_(batch))).all())
            rows = session.execute(
                select(Chunk.document_id, Chunk.version, Chunk.text)
                .where(Chunk.document_id.in_(batch))
                .order_by(Chunk.document_id, Chunk.ordinal)
            )
            for document_id, version, text in rows:
                if version != versions.get(document_id) or sizes.get(document_id, 0) >= MAX_TEXT_CHARS:
                    continue
                texts.setdefault(document_id, []).append(text)
                sizes[document_id] = sizes.get(document_id, 0) + len(text)
    return {document_id: "\n".join(parts)[:MAX_TEXT_CHARS] for document_id, parts in texts.items()}


@dataclass(frozen=True)
class ChunkRow:
    """A chunk of an active document version, with what a duplicate report shows of it."""

    id: str
    document_id: str
    ordinal: int
    page_start: int
    text: str


def chunk_vectors(zhiku: Zhiku, kb: KnowledgeBase) -> tuple[list[ChunkRow], np.ndarray]:
    """The chunks of the ready documents' active versions in ``kb`` whose vector is in the embedding cache, and
    those vectors as the rows of a float32 matrix."""
    key = model_key(kb)
    with zhiku.db.session() as session:
        rows = session.execute(
            select(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.page_start, Chunk.text, Chunk.text_hash)
            .join(Document, Document.id == Chunk.document_id)
            .where(
                Document.kb_id == kb.id,
                Document.status == DocumentStatus.ready,
                Chunk.version == Document.version,
            )
            .order_by(Chunk.document_id, Chunk.ordinal)
        ).all()
        hashes = sorted({row.text_hash for row in rows})
        cached: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), _BATCH):
            entries = session.execute(
                select(EmbeddingCacheEntry.text_hash, EmbeddingCacheEntry.vector).where(
                    EmbeddingCacheEntry.model_key == key,
                    EmbeddingCacheEntry.text_hash.in_(hashes[start : start + _BATCH]),
                )
            )
            cached.update((hash_, np.frombuffer(vector, dtype="<f4")) for hash_, vector in entries)
    kept = [row for row in rows if row.text_hash in cached]
    chunks = [ChunkRow(r.id, r.document_id, r.ordinal, r.page_start, r.text) for r in kept]
    if not kept:
        return [], np.zeros((0, kb.dimension), dtype=np.float32)
    return chunks, np.stack([cached[row.text_hash] for row in kept])


@dataclass(frozen=True)
class Flag:
    """A document a newly ingested one nearly duplicates."""

    document_id: str
    filename: str
    score: float
    kind: Kind

    def as_json(self) -> dict[str, object]:
        """The job payload's form."""
        return {
            "document_id": self.document_id,
            "filename": self.filename,
            "score": round(self.score, 4),
            "kind": self.kind,
        }

    def warning(self) -> str:
        """The document's warning (warnings are text, shown by the CLI and the API as they are)."""
        return f"{WARNING_PREFIX}{self.filename} ({self.kind}, similarity {self.score:.2f}, id {self.document_id})"


MAX_FLAGS = 5
"""At most this many near-duplicates are recorded per new version (the best ones)."""


def flag_near_duplicates(
    zhiku: Zhiku, kb: KnowledgeBase, jobs_by_document: dict[str, str], threshold: float
) -> dict[str, list[Flag]]:
    """Compare each newly flipped document (id → its job) with the knowledge base's other ready documents (one
    matrix product of document vectors per block of them); record the near-duplicates found in the job's payload
    (``near_duplicates``) and as the document's warnings. Nothing is refused. Returns the flags by document."""
    if not jobs_by_document:
        return {}
    ids, matrix = document_vectors(zhiku, kb)
    index = {document_id: row for row, document_id in enumerate(ids)}
    new = [document_id for document_id in jobs_by_document if document_id in index]
    if not new:
        return {}
    own_texts = document_texts(zhiku, new)
    flags: dict[str, list[Flag]] = {}

    def texts_of(rows: list[int]) -> list[str]:
        wanted = [ids[row] for row in rows]
        found = document_texts(zhiku, wanted)
        return [found.get(w, "") for w in wanted]

    unit = unit_rows(matrix)  # once for the group: the new documents are compared in blocks of matrix products
    for first, cosines in cosine_blocks(unit[[index[document_id] for document_id in new]], unit):
        for offset, scores in enumerate(cosines):
            document_id = new[first + offset]
            matches = matches_of(
                scores,
                threshold=threshold,
                text=own_texts.get(document_id, ""),
                other_texts=texts_of,
                exclude=index[document_id],
            )[:MAX_FLAGS]
            if matches:
                flags[document_id] = [Flag(ids[row], "", score, kind) for row, score, kind in matches]
    _record(zhiku, jobs_by_document, new, flags)
    return flags


def _record(zhiku: Zhiku, jobs_by_document: dict[str, str], new: Collection[str], flags: dict[str, list[Flag]]) -> None:
    """Name the flagged documents, and write the payloads and warnings (a new version's old flags go)."""
    matched = {flag.document_id for found in flags.values() for flag in found}
    with zhiku.db.session() as session:
        names = dict(session.execute(select(Document.id, Document.filename).where(Document.id.in_(matched))).all())
        documents = {d.id: d for d in session.scalars(select(Document).where(Document.id.in_(list(new))))}
        job_ids = [jobs_by_document[document_id] for document_id in new]
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}
        for document_id in new:
            named = [
                Flag(f.document_id, names.get(f.document_id, f.document_id), f.score, f.kind)
                for f in flags.get(document_id, [])
            ]
            flags[document_id] = named
            document = documents.get(document_id)
            if document is not None:
                kept = [w for w in document.warnings or [] if not str(w).startswith(WARNING_PREFIX)]
                document.warnings = kept + [f.warning() for f in named]
            job = jobs.get(jobs_by_document[document_id])
            if job is not None:
                job.payload = {**job.payload, "near_duplicates": [f.as_json() for f in named]}
        for document_id in [d for d, found in flags.items() if not found]:
            del flags[document_id]
