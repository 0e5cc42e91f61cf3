"""Text terms shared by the vector stores, lexical search and highlighting: one CJK detection, jieba
segmentation, Snowball stemming.

Two kinds of terms come from here:

- :func:`index_terms` mirrors Qdrant Edge's multilingual tokenizer as configured by zhiku: Chinese (and other
  CJK) runs are split into words with jieba's search mode, other words are lower-cased and English-stemmed
  (Snowball). The Qdrant server adapter indexes these as BM25 sparse vectors (:mod:`zhiku.storage.vectors.bm25`).
- :func:`query_terms` are the distinct words of a query worth highlighting (and counting as lexical evidence in
  hybrid fusion): jieba words for CJK runs, other words of 2+ characters as written, stop words dropped.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

WORD = re.compile(r"[^\W_]+", re.UNICODE)
"""A run of letters and digits (any script)."""
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
"""One CJK character: kana, CJK ideographs (with extension A and compatibility ideographs), Hangul syllables."""
STOPWORDS = frozenset(
    "a an and are as at be by for from how in is it of on or the to was what when where which who why with "
    "的 了 是 在 和 与 及 吗 呢 什么 怎么 如何 哪 哪些 谁 为什么 多少 几".split()
)
_jieba_lock = threading.Lock()
_stemmer_lock = threading.Lock()


def is_cjk(text: str) -> bool:
    """Whether ``text`` holds a CJK character (such text has no spaces between words: segment it)."""
    return CJK.search(text) is not None


@lru_cache(maxsize=1)
def load_jieba() -> object:
    """The jieba module, initialised once (quietly)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.initialize()
    return jieba


def segment(text: str) -> list[str]:
    """jieba's search-mode words of ``text`` (a compound and its parts), in order."""
    jieba = load_jieba()
    return list(jieba.cut_for_search(text))  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The English Snowball stem of ``word``."""
    with _stemmer_lock:  # snowballstemmer objects are not thread-safe
        return str(_stemmer().stemWord(word))  # type: ignore[attr-defined]


def index_terms(text: str) -> list[str]:
    """The text's BM25 terms in order: jieba words for CJK runs, stemmed lower-case words otherwise."""
    out: list[str] = []
    for word in WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if is_cjk(word):
            for piece in segment(word):
                piece = piece.strip()
                if piece and not piece.isspace():
                    out.append(piece if is_cjk(piece) else stem(piece))
        else:
            out.append(stem(word))
    return out


def query_terms(query: str) -> list[str]:
    """Distinct terms worth highlighting: CJK words (jieba, search mode) and other words of 2+ characters,
    longest first."""
    terms: list[str] = []
    for word in WORD.findall(query):
        if is_cjk(word):
            terms.extend(w for w in segment(word) if w.strip())
        elif len(word) >= 2 or word.isdigit():
            terms.append(word)
    seen: dict[str, None] = {}
    for term in terms:
        key = term.lower()
        if key not in STOPWORDS and key not in seen:
            seen[key] = None
    return sorted(seen, key=len, reverse=True)
