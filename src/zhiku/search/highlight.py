"""Query-term highlighting in passages; the terms come from :func:`zhiku.text.terms.query_terms`.

A highlight never splits a word: a Latin-script term marks the whole word it starts ("run" marks "running"), and
a CJK term marks whole words of the passage as jieba segments it (熊猫 marks 大熊猫), never a match that cuts
across two of them (文字 is not marked in 西文字体, whose words are 西文 and 字体).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from zhiku.text.terms import CJK, is_cjk, load_jieba

_LETTER = rf"(?:(?!{CJK.pattern})[^\W_])"
"""One letter or digit of a script written with spaces between words (not CJK)."""


def _latin_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Whole words of ``text`` that start with one of ``terms`` (case-insensitive)."""
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<!{_LETTER})(?:{alternatives}){_LETTER}*", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def _cjk_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Whole jieba words of ``text`` that hold one of ``terms``, or runs of whole words that are one."""
    found: set[tuple[int, int]] = set()
    lowered = text.lower()
    for term in {t.lower() for t in terms}:
        at = lowered.find(term)
        while at >= 0:
            found.add((at, at + len(term)))
            at = lowered.find(term, at + 1)
    if not found:
        return []
    jieba = load_jieba()
    tokens = [(start, end) for _, start, end in jieba.tokenize(text)]  # type: ignore[attr-defined]
    token_at = [0] * len(text)
    for index, (start, end) in enumerate(tokens):
        for position in range(start, end):
            token_at[position] = index
    words = jieba.dt.FREQ  # type: ignore[attr-defined]

    def is_word(piece: str) -> bool:
        return bool(words.get(piece))

    def orphan(index: int) -> str | None:  # a single CJK character jieba left on its own
        if 0 <= index < len(tokens):
            start, end = tokens[index]
            if end - start == 1 and is_cjk(text[start]):
                return text[start]
        return None

    spans = []
    for start, end in found:
        first, last = token_at[start], token_at[end - 1]
        word_start, word_end = tokens[first][0], tokens[last][1]
        if first == last:  # inside one word (or the word itself): mark the whole word
            left, right = orphan(first - 1), orphan(first + 1)
            if (
                left
                and right
                and (word_start, word_end) == (start, end)
                and is_word(left + text[start])
                and is_word(text[end - 1] + right)
            ):
                continue  # 西|文字|体: jieba split 西文字体 wrongly; the match cuts across 西文 and 字体
            spans.append((word_start, word_end))
        elif (word_start, word_end) == (start, end):  # several whole words
            spans.append((start, end))
    return spans


def highlight_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ``(start, end)`` character spans of whole words of ``text`` that match ``terms``
    (case-insensitive). Other terms match at word starts and mark the whole word; CJK terms mark whole words."""
    if not terms:
        return []
    latin = [t for t in terms if not is_cjk(t)]
    cjk = [t for t in terms if is_cjk(t)]
    candidates = (_latin_spans(text, latin) if latin else []) + (_cjk_spans(text, cjk) if cjk else [])
    spans: list[tuple[int, int]] = []
    for start, end in sorted(candidates, key=lambda span: (span[0], -span[1])):
        if not spans or start >= spans[-1][1]:
            spans.append((start, end))
    return spans


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
