"""Query-term highlighting in passages: language-aware terms (jieba for Chinese, words for the rest)."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from functools import lru_cache

_LATIN_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_STOPWORDS = frozenset(
    "a an and are as at be by for from how in is it of on or the to was what when where which who why with "
    "的 了 是 在 和 与 及 吗 呢 什么 怎么 如何 哪 哪些 谁 为什么 多少 几".split()
)
_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def load_jieba() -> object:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.initialize()
    return jieba


def query_terms(query: str) -> list[str]:
    """Distinct terms worth highlighting: Chinese words (jieba, search mode) and other words of 2+ characters."""
    terms: list[str] = []
    for word in _LATIN_WORD.findall(query):
        if _CJK.search(word):
            jieba = load_jieba()
            terms.extend(w for w in jieba.cut_for_search(word) if w.strip())  # type: ignore[attr-defined]
        elif len(word) >= 2 or word.isdigit():
            terms.append(word)
    seen: dict[str, None] = {}
    for term in terms:
        key = term.lower()
        if key not in _STOPWORDS and key not in seen:
            seen[key] = None
    return sorted(seen, key=len, reverse=True)


def highlight_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` character spans of ``terms`` in ``text`` (case-insensitive).

    Latin terms match at word starts (so "run" also marks "running"); Chinese terms match anywhere.
    """
    if not terms:
        return []
    parts = [re.escape(t) if _CJK.search(t) else r"(?<![^\W_])" + re.escape(t) for t in terms]
    pattern = re.compile("|".join(parts), re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def mark(
    text: str,
    spans: list[tuple[int, int]],
    open_tag: str = "<mark>",
    close_tag: str = "</mark>",
    escape: Callable[[str], str] = html.escape,
) -> str:
    """``text`` with every span wrapped in ``open_tag``/``close_tag``; the text pieces pass through ``escape``
    (HTML escaping by default, so the result is safe to insert as HTML)."""
    out, last = [], 0
    for start, end in spans:
        out += [escape(text[last:start]), open_tag, escape(text[start:end]), close_tag]
        last = end
    out.append(escape(text[last:]))
    return "".join(out)
