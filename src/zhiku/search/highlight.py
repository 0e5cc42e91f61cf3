"""Query-term highlighting in passages; the terms come from :func:`zhiku.text.terms.query_terms`."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from zhiku.text.terms import is_cjk


def highlight_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` character spans of ``terms`` in ``text`` (case-insensitive).

    Other terms match at word starts (so "run" also marks "running"); CJK terms match anywhere.
    """
    if not terms:
        return []
    parts = [re.escape(t) if is_cjk(t) else r"(?<![^\W_])" + re.escape(t) for t in terms]
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
