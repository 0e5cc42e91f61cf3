"""Query-term highlighting in passages; the terms come from :func:`zhiku.text.terms.query_terms`.

A highlight never splits a word: a Latin-script term marks the whole word it starts ("run" marks "running"), and
a CJK term marks whole words of the passage as jieba segments it (熊猫 marks 大熊猫), never a match that cuts
across two of them (文字 is not marked in 西文字体, whose words are 西文 and 字体).
"""

from __future__ import annotations

import bisect
import functools
import html
import re
from collections.abc import Callable

from zhiku.text.terms import CJK, is_cjk, load_jieba


def _latin_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Whole words of ``text`` that start with one of ``terms`` (case-insensitive): a match not preceded by a
    letter, extended to the end of its word. (The same as one regex with a CJK-excluding letter class around the
    terms, whose compilation, once per query, cost more than the rest of a search's highlighting.)"""
    pattern = _alternatives(tuple(sorted(terms, key=len, reverse=True)))
    spans = []
    found = pattern.search(text)
    while found:
        start, end = found.span()
        if start > 0 and _is_letter(text[start - 1]):
            found = pattern.search(text, start + 1)
            continue
        while end < len(text) and _is_letter(text[end]):
            end += 1
        spans.append((start, end))
        found = pattern.search(text, max(end, start + 1))
    return spans


def _is_letter(char: str) -> bool:
    """A letter or digit of a script written with spaces between words (not CJK)."""
    return char.isalnum() and not CJK.match(char)


@functools.lru_cache(maxsize=1024)
def _alternatives(terms: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``terms``, the first listed first, case-insensitive."""
    return re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)


def _cjk_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Whole jieba words of ``text`` that hold one of ``terms``, or runs of whole words that are one."""
    found: set[tuple[int, int]] = set()
    lowered = _lower(text)
    for term in {_lower(t) for t in terms}:
        at = lowered.find(term)
        while at >= 0:
            found.add((at, at + len(term)))
            at = lowered.find(term, at + 1)
    if not found:
        return []
    jieba = load_jieba()
    blocks = _Blocks(text, jieba.re_han_default)  # type: ignore[attr-defined]
    words = jieba.dt.FREQ  # type: ignore[attr-defined]

    def is_word(piece: str) -> bool:
        return bool(words.get(piece))

    spans = []
    for start, end in found:
        tokens = blocks.tokens_around(start, end)
        first = next(i for i, (_, token_end) in enumerate(tokens) if token_end > start)
        last = next(i for i, (_, token_end) in enumerate(tokens) if token_end >= end)
        word_start, word_end = tokens[first][0], tokens[last][1]
        if first == last:  # inside one word (or the word itself): mark the whole word
            left, right = _orphan(text, tokens, first - 1), _orphan(text, tokens, first + 1)
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


def _lower(text: str) -> str:
    """``text`` lower-cased character by character, keeping its length (``"İ".lower()`` is two characters), so
    that offsets in it are offsets in ``text``."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _orphan(text: str, tokens: list[tuple[int, int]], index: int) -> str | None:
    """The character of token ``index`` if it is a single CJK character jieba left on its own."""
    if 0 <= index < len(tokens):
        start, end = tokens[index]
        if end - start == 1 and is_cjk(text[start]):
            return text[start]
    return None


class _Blocks:
    """jieba's words of a text, segmented only where they are needed.

    jieba cuts a text into blocks (runs of its ``re_han`` characters: ideographs, ASCII letters and digits, a few
    signs) and segments each block on its own; everything between blocks is one token per character. So the
    words around a match are those of the blocks it touches, and segmenting just them gives exactly what
    segmenting the whole passage gives, at a fraction of the cost (segmenting whole passages took more than
    half of a search's time)."""

    def __init__(self, text: str, re_han: re.Pattern[str]) -> None:
        self.text = text
        self.blocks = [(m.start(), m.end()) for m in re_han.finditer(text)]
        self.starts = [start for start, _ in self.blocks]
        self.segmented: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def _extent(self, position: int) -> tuple[int, int]:
        """The block holding ``position``, or the token there between blocks: one character, or a ``\\r\\n``."""
        index = bisect.bisect_right(self.starts, position) - 1
        if index >= 0 and self.blocks[index][1] > position:
            return self.blocks[index]
        if self.text.startswith("\r\n", position):
            return position, position + 2
        if position > 0 and self.text.startswith("\r\n", position - 1):
            return position - 1, position + 1
        return position, position + 1

    def tokens_around(self, start: int, end: int) -> list[tuple[int, int]]:
        """``(start, end)`` of jieba's tokens over the blocks that ``text[start:end]`` touches, with the token
        just before and just after them (a character between blocks, or the neighbouring block's last or first
        word), in order."""
        begin, finish = self._extent(start)[0], self._extent(end - 1)[1]
        tokens = self._segment(begin, finish)
        before = self._segment(*self._extent(begin - 1))[-1:] if begin > 0 else []
        after = self._segment(*self._extent(finish))[:1] if finish < len(self.text) else []
        return before + tokens + after

    def _segment(self, begin: int, finish: int) -> list[tuple[int, int]]:
        if (begin, finish) not in self.segmented:
            piece = self.text[begin:finish]
            words = _cached_words(piece) if len(piece) <= MAX_CACHED_BLOCK else _words(piece)
            self.segmented[begin, finish] = [(begin + a, begin + b) for a, b in words]
        return self.segmented[begin, finish]


MAX_CACHED_BLOCK = 256
"""Blocks up to this many characters (a clause or a sentence) are segmented once per process, not once per search:
the same passages come up in search after search. 16k of them take a few MB."""


def _words(block: str) -> tuple[tuple[int, int], ...]:
    """jieba's words of ``block`` as ``(start, end)`` offsets."""
    jieba = load_jieba()
    return tuple((start, end) for _, start, end in jieba.tokenize(block))  # type: ignore[attr-defined]


_cached_words = functools.lru_cache(maxsize=16384)(_words)


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
