"""Page furniture: the lines of a paged document that are not its content.

Tables of contents, running headers and footers, and bare page numbers repeat the words of the content they
point to (a TOC line ``55 DVI 里不能显示 EPS 图片？ . . . 23`` holds the very title of the answer on page 23),
so indexed they compete with that content and often win on BM25. :func:`strip_furniture` removes them from each
page's text before chunking:

- **TOC entries**: a line ending in a dot leader and a page number (``Title . . . . 23``, ``Title …… 23``); on a
  page made mostly of such lines (a contents page), also the outline lines around them that end in a page
  number without a leader (``C 安装升级 7``).
- **Running headers and footers**: among the first and last :data:`EDGE_LINES` lines of each page, a line that
  recurs, digits aside, at the edge of at least :data:`MIN_REPEAT_SHARE` of the pages (and of 3 at least), such
  as a copyright footer; or one that recurs on 2+ pages and carries its page's own number (``H 图形表格 21`` on
  page 21, a chapter's running head).
- **Page numbers**: an edge line that is only the page's number, alone or in a usual dress (``- 21 -``,
  ``Page 21 of 40``, ``第 21 页``, ``21 / 40``).

Only documents with at least 3 pages are examined for repetition, and a page whose every line would go keeps
its text unless the page is a contents page: a removal must never empty a page of real content.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

EDGE_LINES = 2
"""How many lines at the top and at the bottom of a page may be a header or footer."""
MIN_REPEAT_SHARE = 0.3
"""A line (digits aside) at the edge of this share of the pages is a running header or footer."""
MIN_PAGES = 3
"""Fewer pages say nothing about repetition."""
CONTENTS_SHARE = 0.4
"""A page whose non-empty lines are at least this share of TOC entries (and 5 or more) is a contents page."""

_LEADER = re.compile(r"(?:[.·…．‥⋯_]\s*){3,}\s*(\d{1,4}|[ivxlcdm]{1,7})\s*$", re.IGNORECASE)
_ENDS_IN_NUMBER = re.compile(r"\S.*?\s(\d{1,4})\s*$")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_PAGE_NUMBER_FORMS = (
    r"[-–—]?\s*{n}\s*[-–—]?",
    r"(?:page|p\.|pg\.?)\s*{n}(?:\s*(?:of|/)\s*\d+)?",
    r"第\s*{n}\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?",
    r"{n}\s*/\s*\d+",
)


@dataclass(frozen=True)
class Furniture:
    """What :func:`strip_furniture` removed, by kind (line counts)."""

    toc_lines: int = 0
    running_lines: int = 0
    page_numbers: int = 0

    @property
    def total(self) -> int:
        """Lines removed in all."""
        return self.toc_lines + self.running_lines + self.page_numbers


def strip_furniture(pages: Sequence[str]) -> tuple[list[str], Furniture]:
    """Each page's text without its furniture (see the module), and what was removed."""
    lines_of = [page.split("\n") for page in pages]
    repeated = _running_keys(lines_of) if len(pages) >= MIN_PAGES else (set(), set())
    toc = running = numbers = 0
    cleaned: list[str] = []
    for number, lines in enumerate(lines_of, start=1):
        drop: dict[int, str] = {}
        leader_lines = [i for i, line in enumerate(lines) if _LEADER.search(line)]
        filled = [i for i, line in enumerate(lines) if line.strip()]
        contents_page = len(leader_lines) >= 5 and len(leader_lines) >= CONTENTS_SHARE * len(filled)
        for i in leader_lines:
            drop[i] = "toc"
        if contents_page:
            for i in filled:
                if i not in drop and _ENDS_IN_NUMBER.match(lines[i]):
                    drop[i] = "toc"
        for i in _edges(lines):
            if i in drop:
                continue
            if _is_page_number(lines[i], number):
                drop[i] = "number"
            elif _key(lines[i]) in repeated[0] or (_key(lines[i]) in repeated[1] and _has_number(lines[i], number)):
                drop[i] = "running"
        kept = [line for i, line in enumerate(lines) if i not in drop]
        if drop and not any(line.strip() for line in kept) and not contents_page:
            cleaned.append(pages[number - 1])  # never empty a page of content
            continue
        toc += sum(kind == "toc" for kind in drop.values())
        running += sum(kind == "running" for kind in drop.values())
        numbers += sum(kind == "number" for kind in drop.values())
        cleaned.append("\n".join(kept).strip("\n"))
    return cleaned, Furniture(toc_lines=toc, running_lines=running, page_numbers=numbers)


def _edges(lines: list[str]) -> list[int]:
    """Indexes of the first and last :data:`EDGE_LINES` non-empty lines."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return sorted(set(filled[:EDGE_LINES] + filled[-EDGE_LINES:]))


def _key(line: str) -> str:
    """A line with its digits and spacing normalised, so page-numbered repeats compare equal."""
    return _SPACES.sub(" ", _DIGITS.sub("#", line)).strip()


def _running_keys(lines_of: list[list[str]]) -> tuple[set[str], set[str]]:
    """Edge-line keys on at least :data:`MIN_REPEAT_SHARE` of the pages, and those on at least two pages."""
    counts: Counter[str] = Counter()
    for lines in lines_of:
        counts.update({_key(lines[i]) for i in _edges(lines)} - {""})
    common = max(MIN_PAGES, math.ceil(MIN_REPEAT_SHARE * len(lines_of)))
    return {k for k, c in counts.items() if c >= common}, {k for k, c in counts.items() if c >= 2}


def _has_number(line: str, number: int) -> bool:
    """True when ``line`` carries ``number`` as a number of its own (not inside a longer one)."""
    return str(number) in _DIGITS.findall(line)


def _is_page_number(line: str, number: int) -> bool:
    """True when ``line`` is only page ``number``, bare or in a usual dress."""
    text = line.strip()
    return any(re.fullmatch(form.format(n=number), text, re.IGNORECASE) for form in _PAGE_NUMBER_FORMS)
