"""Embedding chunk texts as documents, through the embedding cache in the metadata database (shared by ingestion
and the re-index): identical texts are embedded once per model and dimension."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from zhiku.core import Zhiku
from zhiku.embedding.base import Embedder
from zhiku.storage.models import EmbeddingCacheEntry, KnowledgeBase, utcnow

EMBED_BATCH = 64
"""Texts per embedding call: enough for full model batches, small enough for steady progress reports."""


def model_key(kb: KnowledgeBase) -> str:
    """Embedding-cache namespace: documents are embedded without instruction, so model and dimension."""
    return f"{kb.embedding_model}|{kb.dimension}"


def text_hash(text: str) -> str:
    """SHA-256 of a chunk's embedded text (with its context, if any: the embedding-cache key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_with_cache(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    embedder: Embedder,
    texts: list[str],
    on_progress: Callable[[int], object],
    token_counts: Sequence[int] | None = None,
) -> np.ndarray:
    """Embed ``texts`` as documents, reusing cached vectors of identical texts and embedding each new one once.

    ``token_counts`` are the texts' content tokens when known (chunks carry them), so the model's tokenizer
    does not count them again.

    New texts are embedded in calls of at most :data:`EMBED_BATCH`, of even size (no small tail call), sorted by
    length so that texts of similar length share a call (less padding); ``on_progress`` gets the number of texts
    done after each call.
    """
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
    text_of = dict(zip(hashes, texts, strict=True))
    tokens_of = dict(zip(hashes, token_counts, strict=True)) if token_counts is not None else None
    missing = sorted((h for h in unique if h not in found), key=lambda h: len(text_of[h]))
    uses = Counter(hashes)
    done = len(texts) - sum(uses[h] for h in missing)
    on_progress(done)
    size = math.ceil(len(missing) / math.ceil(len(missing) / EMBED_BATCH)) if missing else 1  # 75 -> 38 + 37
    for start in range(0, len(missing), size):
        batch = missing[start : start + size]
        counts = [tokens_of[h] for h in batch] if tokens_of is not None else None
        result = embedder.embed(
            [text_of[h] for h in batch], input_type="document", dimensions=kb.dimension, token_counts=counts
        )
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
