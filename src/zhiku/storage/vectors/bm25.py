"""BM25 sparse vectors for vector stores without their own multilingual text index (the Qdrant server adapter).

Terms are :func:`zhiku.text.terms.index_terms`, which mirror Qdrant Edge's multilingual tokenizer as configured
by zhiku. Documents become sparse vectors of BM25 term-frequency weights; the store multiplies in the IDF
(Qdrant's ``Modifier.IDF``), so the score of a query is BM25. Term ids are CRC-32 hashes of the terms
(collisions are rare and harmless).
"""

from __future__ import annotations

import zlib
from collections import Counter

from zhiku.text.terms import index_terms

K1 = 1.2
B = 0.75
AVERAGE_TERMS = 256
"""Assumed average document length in terms (as Qdrant's own BM25 model does); chunks are about this long."""


def term_id(term: str) -> int:
    """A term's sparse-vector index."""
    return zlib.crc32(term.encode("utf-8"))


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse BM25 term-frequency weights of a document (IDF is applied by the store)."""
    counts = Counter(term_id(t) for t in index_terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVERAGE_TERMS)
    indices = sorted(counts)
    return indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices]


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse query: each distinct term once (BM25 sums the IDF-weighted document weights of query terms)."""
    indices = sorted({term_id(t) for t in index_terms(text)})
    return indices, [1.0] * len(indices)
