"""BM25 terms for vector stores without their own multilingual text index (the Qdrant server adapter).

Mirrors Qdrant Edge's multilingual tokenizer as configured by zhiku: Chinese (and other CJK) runs are split into
words with jieba's search mode, other words are lower-cased and English-stemmed (Snowball). Documents become
sparse vectors of BM25 term-frequency weights; the store multiplies in the IDF (Qdrant's ``Modifier.IDF``), so
the score of a query is BM25. Term ids are CRC-32 hashes of the terms (collisions are rare and harmless).
"""

from __future__ import annotations

import re
import threading
import unicodedata
import zlib
from collections import Counter
from functools import lru_cache

from zhiku.search.highlight import load_jieba

K1 = 1.2
B = 0.75
AVERAGE_TERMS = 256
"""Assumed average document length in terms (as Qdrant's own BM25 model does); chunks are about this long."""

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_stemmer_lock = threading.Lock()


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    with _stemmer_lock:  # snowballstemmer objects are not thread-safe
        return str(_stemmer().stemWord(word))  # type: ignore[attr-defined]


def terms(text: str) -> list[str]:
    """The text's terms in order: jieba words for CJK runs, stemmed lower-case words otherwise."""
    out: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if _CJK.search(word):
            jieba = load_jieba()
            for piece in jieba.cut_for_search(word):  # type: ignore[attr-defined]
                piece = piece.strip()
                if piece and not piece.isspace():
                    out.append(piece if _CJK.search(piece) else _stem(piece))
        else:
            out.append(_stem(word))
    return out


def term_id(term: str) -> int:
    """A term's sparse-vector index."""
    return zlib.crc32(term.encode("utf-8"))


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse BM25 term-frequency weights of a document (IDF is applied by the store)."""
    counts = Counter(term_id(t) for t in terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVERAGE_TERMS)
    indices = sorted(counts)
    return indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices]


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """Sparse query: each distinct term once (BM25 sums the IDF-weighted document weights of query terms)."""
    indices = sorted({term_id(t) for t in terms(text)})
    return indices, [1.0] * len(indices)
