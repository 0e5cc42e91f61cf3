"""Token-aware chunking of parsed documents on semantic boundaries.

The splitting itself is ``semantic-text-splitter`` (Rust): it packs the largest semantic units that fit the token
budget (markdown headings and blocks; blank-line paragraphs, lines, Unicode sentences, words, graphemes) and makes
token-based overlap; chunk offsets it reports are character (code point) offsets, and it trims whitespace. Tokens
are counted by a memoised callback into the caller's tokenizer. Around the library, this module adds:

* **Structure**: a document's sections are chunked separately, so a chunk does not straddle two headings' scopes
  and overlap stops at section boundaries. Consecutive sections are merged when together they fit one chunk
  (never across top-level sections; for documents whose sections are units, ``whole_sections`` as code
  definitions are, never into a range that holds part of a section and part of what lies outside it), and a
  heading-only stub (a parent section's text before its first subsection, at most 1/8 of the budget) is carried
  into its first subsection's range. (The plain splitter then keeps the
  heading with the first paragraphs; ``MarkdownSplitter`` ranks headings highest and may still emit it alone.)
* **CJK clause boundaries**: Unicode sentence segmentation ends sentences at 。！？ but not at ；, so a sentence
  longer than the budget was cut at an arbitrary word. The splitter therefore sees a same-length copy of the text
  with ；shown as 。 (so ；ends a "sentence"), and, only inside sentences that still had to be cut mid-clause, with
  ，shown as 。 too (a second pass), so a long sentence is cut after a clause. Offsets map 1:1 to the original.
* **Bounded re-runs**: large plain-text ranges are split at blank lines into runs of >= 64 chunks' worth of
  characters, so the second pass only re-chunks the runs that need it.
* **One tokenization per range**: the splitter asks the size of many candidate pieces of a range (a binary search
  over its semantic levels). The range is tokenized once, with offsets, and a piece's size is the number of
  those tokens it overlaps (found by bisection); only a piece that is not a substring of the range is tokenized
  on its own. Measured on the shared corpora (documents of 2 and 20 passages): all-MiniLM-L6-v2's WordPiece
  chunking 1.7-2x faster (7.2 tokenizer calls per two-passage document down to 2) with identical chunks; USE's
  sentencepiece about as fast as before (its offsets cost more), with up to 0.8% more chunks at 128 tokens.
* **Tables** (``doc.tables``, reported by the parsers): a table too long for one chunk is chunked apart from
  the text around it, cut only at its rows' starts into row groups that fit the budget less its header's tokens
  (a single row longer than that is cut like text). The header cannot be repeated inside a chunk's text (a chunk
  is a span of the document), so every chunk of the table but the one beginning with the header gets the header
  as its ``context``; what is embedded and indexed is ``context + "\n" + text``, and ``tokens`` counts that.
  Short text just before the table in its section (at most 1/4 of the budget: a heading, a caption) goes into
  the table's first chunk rather than a chunk of its own. A table that fits one chunk is left to the splitter,
  which keeps it whole (it is one paragraph to it); a table whose header alone takes more than 1/3 of the budget
  is chunked as text (repeating it would leave little room for rows). There is no overlap between a table's
  chunks: each row group stands on its own under its header.
* **Exact token counts**: every chunk is re-counted on the original text with the caller's tokenizer (no special
  tokens, no padding, no truncation), all chunks of a document in one call; a chunk over the budget (pushed by
  the substitution, or by a piece tokenizing differently alone than in context) is re-split.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol

from semantic_text_splitter import MarkdownSplitter, TextSplitter

from zhiku.documents.types import ChunkSpan, ParsedDocument, Table, indexed_text

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["chunk_document"]

#: ；ends a sentence for the splitter (it is a sentence boundary in Chinese; Unicode sentence rules ignore it).
_SEMICOLON_AS_STOP = str.maketrans({"；": "。"})
#: Inside a sentence that must be cut anyway, ，becomes a sentence end as well, so the cut lands after a clause.
_COMMA_AS_STOP = str.maketrans({"，": "。"})
#: Sentence ends in the splitter's view (after the ；substitution) plus newlines.
_SENTENCE_END = re.compile(r"[。！？\n]")
_WHITESPACE = re.compile(r"\s*")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
#: Plain-text ranges are chunked in runs of at least this many characters per budget token (cut at blank lines).
_RUN_CHUNKS = 64
#: A chunk ending in one of these did not end mid-clause.
_CLAUSE_END_CHARS = frozenset("。！？；，、：!?.;,:…)]}）】」』”’\"'》〉")
#: A subsection's parent text of at most this fraction of the budget is carried into the subsection's range.
_STUB_FRACTION = 8
#: A table whose header takes more than this fraction of the budget is chunked as plain text.
_HEADER_FRACTION = 3
#: Text before a long table in its section of at most this fraction of the budget goes into its first chunk.
_LEAD_FRACTION = 4
_CACHE_SIZE = 4


class _Tokenizer(Protocol):
    """The parts of ``tokenizers.Tokenizer`` used here."""

    @property
    def padding(self) -> Any: ...

    @property
    def truncation(self) -> Any: ...

    def encode_batch_fast(self, inputs: Sequence[str], add_special_tokens: bool = ...) -> list[Any]: ...

    def encode_batch(self, inputs: Sequence[str], add_special_tokens: bool = ...) -> list[Any]: ...


def chunk_document(
    doc: ParsedDocument,
    tokenizer: Tokenizer,
    *,
    chunk_tokens: int,
    overlap_tokens: int = 0,
    markdown: bool | None = None,
) -> list[ChunkSpan]:
    """Split ``doc.text`` into token-bounded chunks on semantic boundaries.

    Args:
        doc: The parsed document; its ``sections`` delimit ranges that are chunked separately and its ``pages``
            give each chunk's ``page_start``/``page_end``.
        tokenizer: A Hugging Face ``tokenizers.Tokenizer``. Tokens are counted without special tokens; a padding
            or truncation setting on the tokenizer is ignored (a copy without them is used), it is never mutated.
        chunk_tokens: Hard maximum of tokens per chunk (>= 1).
        overlap_tokens: Tokens of overlap between consecutive chunks of the same section range
            (0 <= overlap_tokens < chunk_tokens); there is no overlap across section boundaries.
        markdown: Split with markdown structure (headings, lists, code blocks); defaults to
            ``doc.mime_type == "text/markdown"``.

    Returns:
        Chunks in document order with ordinals 0..n-1. For every chunk ``doc.text[start:end] == text``,
        ``tokens`` (of ``context + "\n" + text``, or of ``text`` without context) ``<= chunk_tokens``, the text is
        not whitespace-only, and ``heading_path`` is ``doc.heading_path_at(start)``. Every non-whitespace character
        of the document lies in some chunk. Chunks of a long table's rows carry its header as ``context``.

    Raises:
        ValueError: For ``chunk_tokens < 1``, ``overlap_tokens < 0`` or ``overlap_tokens >= chunk_tokens``, or when
            a single character alone needs more than ``chunk_tokens`` tokens.
    """
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be an integer >= 1, got {chunk_tokens!r}")
    if isinstance(overlap_tokens, bool) or not isinstance(overlap_tokens, int) or overlap_tokens < 0:
        raise ValueError(f"overlap_tokens must be an integer >= 0, got {overlap_tokens!r}")
    if overlap_tokens >= chunk_tokens:
        raise ValueError(f"overlap_tokens ({overlap_tokens}) must be smaller than chunk_tokens ({chunk_tokens})")
    text = doc.text
    if not text or text.isspace():
        return []
    use_markdown = doc.mime_type == "text/markdown" if markdown is None else markdown
    counter = _counting_tokenizer(tokenizer)
    splitter = _splitter(counter, chunk_tokens, overlap_tokens, use_markdown)
    headings = _HeadingIndex(doc)

    tables = _long_tables(text, doc.tables, counter, chunk_tokens)
    spans: list[tuple[int, int]] = []
    table_chunks: list[tuple[int, int, int, str]] = []
    for lo, hi in _ranges(text, counter, chunk_tokens, headings):
        parts = _cut_tables(lo, hi, tables)
        for position, (part_lo, part_hi, table) in enumerate(parts):
            if table is not None:
                lead = parts[position - 1][0] if position and parts[position - 1][2] is None else None
                if lead is not None and _count(counter, [text[lead:part_lo]])[0] > chunk_tokens // _LEAD_FRACTION:
                    lead = None
                table_chunks.extend(_table_chunks(text, table, counter, chunk_tokens, lead=lead))
                continue
            following = parts[position + 1][2] if position + 1 < len(parts) else None
            if following is not None and _count(counter, [text[part_lo:part_hi]])[0] <= chunk_tokens // _LEAD_FRACTION:
                continue  # a short lead-in (a heading, a caption) goes with the table's first rows
            pieces = (
                [(part_lo, part_hi)]
                if use_markdown
                else _paragraph_runs(text, part_lo, part_hi, _RUN_CHUNKS * chunk_tokens)
            )
            for start, end in pieces:
                spans.extend(_split_range(text, start, end, splitter))
    plain = [(start, end, tokens, "") for start, end, tokens in _enforce_limit(text, spans, counter, chunk_tokens)]
    counted = _drop_contained(plain + table_chunks)

    pages = _PageIndex(doc)
    return [
        ChunkSpan(
            ordinal=ordinal,
            text=text[start:end],
            start=start,
            end=end,
            tokens=tokens,
            page_start=pages.page_at(start),
            page_end=pages.page_at(end - 1),
            heading_path=headings.heading_path_at(start),
            context=context,
        )
        for ordinal, (start, end, tokens, context) in enumerate(counted)
    ]


# --------------------------------------------------------------------------------------------- splitting


def _split_range(text: str, lo: int, hi: int, splitter: _Splitter) -> list[tuple[int, int]]:
    """Chunk ``text[lo:hi]`` with the splitter; absolute, trimmed, non-empty spans in order."""
    piece = text[lo:hi]
    view = piece.translate(_SEMICOLON_AS_STOP) if "；" in piece else piece
    spans = splitter.spans(view)
    if "，" in view:
        clauses = _overlong_sentences(view, spans)
        if clauses:
            parts: list[str] = []
            cursor = 0
            for start, end in clauses:
                parts.append(view[cursor:start])
                parts.append(view[start:end].translate(_COMMA_AS_STOP))
                cursor = end
            parts.append(view[cursor:])
            spans = splitter.spans("".join(parts))
    return [(lo + start, lo + end) for start, end in spans]


def _overlong_sentences(view: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences holding a mid-clause cut (a chunk end inside them) that contain a ，to cut at instead."""
    found: list[tuple[int, int]] = []
    for begin, end in spans:
        if end >= len(view) or view[end - 1] in _CLAUSE_END_CHARS:
            continue
        gap = _WHITESPACE.match(view, end)
        if gap is not None and "\n" in gap.group():
            continue
        # Look at most one chunk length around the cut (keeps this linear on text without sentence ends).
        reach = end - begin
        floor = max(0, begin - reach)
        start = max(floor - 1, *(view.rfind(mark, floor, end) for mark in "。！？\n")) + 1
        match = _SENTENCE_END.search(view, end, end + 2 * reach)
        stop = match.start() if match else min(len(view), end + 2 * reach)
        if "，" not in view[start:stop]:
            continue
        if found and start <= found[-1][1]:
            found[-1] = (found[-1][0], max(found[-1][1], stop))
        else:
            found.append((start, stop))
    return found


def _drop_contained(spans: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """``(start, end, tokens, context)`` in document order without any span lying inside another one.

    With overlap, a re-split chunk's pieces or a chunk after whitespace trimming can end up inside (or before)
    their neighbour; such a span adds no text.
    """
    kept: list[tuple[int, int, int, str]] = []
    for span in sorted(spans, key=lambda span: (span[0], -span[1])):
        if not kept or span[1] > kept[-1][1]:
            kept.append(span)
    return kept


def _enforce_limit(
    text: str, spans: list[tuple[int, int]], counter: _Tokenizer, chunk_tokens: int
) -> list[tuple[int, int, int]]:
    """Count every span exactly on the original text; re-split the ones over the budget (the splitter saw the
    ；/，substituted text and estimated sizes). Returns ``(start, end, tokens)``."""
    counts = _count(counter, [text[start:end] for start, end in spans])
    if all(count <= chunk_tokens for count in counts):
        return [(start, end, count) for (start, end), count in zip(spans, counts, strict=True)]
    exact = _splitter(counter, chunk_tokens, 0, markdown=False)
    fixed: list[tuple[int, int, int]] = []
    for (start, end), count in zip(spans, counts, strict=True):
        if count <= chunk_tokens:
            fixed.append((start, end, count))
            continue
        for sub_start, sub_end in exact.spans(text[start:end]):
            piece = text[start + sub_start : start + sub_end]
            tokens = _count(counter, [piece])[0]
            if tokens > chunk_tokens:
                raise ValueError(
                    f"chunk_tokens={chunk_tokens} is too small: {piece[:20]!r} at offset {start + sub_start} "
                    "cannot be split further without breaking a character"
                )
            fixed.append((start + sub_start, start + sub_end, tokens))
    return fixed


def _count(counter: _Tokenizer, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(encoding) for encoding in counter.encode_batch_fast(texts, add_special_tokens=False)]


def _counter_callback(counter: _Tokenizer) -> Callable[[str], int]:
    """A token counter for the splitter; memoised, as about a third of its calls repeat an earlier text."""

    @lru_cache(maxsize=1024)
    def count(piece: str) -> int:
        return _count(counter, [piece])[0] if piece else 0

    return count


# --------------------------------------------------------------------------------------------- tables


def _long_tables(text: str, tables: Sequence[Table], counter: _Tokenizer, chunk_tokens: int) -> list[Table]:
    """The well-formed, non-overlapping tables of ``tables`` that do not fit one chunk (in text order)."""
    valid: list[Table] = []
    for table in sorted(tables, key=lambda table: table.start):
        bounds = [table.start, *table.row_starts, table.end]
        if (
            not table.row_starts
            or not 0 <= table.start < table.row_starts[0]
            or (table.header_end is not None and not table.start < table.header_end <= table.row_starts[0])
            or table.end > len(text)
            or any(a > b for a, b in pairwise(bounds))
            or (valid and table.start < valid[-1].end)
        ):
            continue  # a parser's bad record: the text is still chunked, as text
        valid.append(table)
    counts = _count(counter, [text[table.start : table.end] for table in valid])
    return [table for table, tokens in zip(valid, counts, strict=True) if tokens > chunk_tokens]


def _cut_tables(lo: int, hi: int, tables: list[Table]) -> list[tuple[int, int, Table | None]]:
    """``[lo, hi)`` as consecutive parts: the tables lying wholly inside it, and the text between them."""
    parts: list[tuple[int, int, Table | None]] = []
    cursor = lo
    first = bisect.bisect_left([table.start for table in tables], lo)
    for table in tables[first:]:
        if table.start >= hi:
            break
        if table.end > hi:
            continue  # straddles a section boundary: chunked as text
        if cursor < table.start:
            parts.append((cursor, table.start, None))
        parts.append((table.start, table.end, table))
        cursor = table.end
    if cursor < hi:
        parts.append((cursor, hi, None))
    return parts


def _trimmed(text: str, lo: int, hi: int) -> tuple[int, int]:
    """``[lo, hi)`` without surrounding whitespace (empty: ``lo == hi``)."""
    piece = text[lo:hi]
    stripped = piece.strip()
    if not stripped:
        return lo, lo
    start = lo + len(piece) - len(piece.lstrip())
    return start, start + len(stripped)


def _table_chunks(
    text: str, table: Table, counter: _Tokenizer, chunk_tokens: int, *, lead: int | None = None
) -> list[tuple[int, int, int, str]]:
    """``(start, end, tokens, context)`` of a long table's chunks: its header with the first rows (after the short
    text from ``lead`` on, if given), then row groups with the header as context (see the module docs). Falls back
    to text chunks when the header is too long."""
    header = table.header(text)
    begin = table.start if lead is None else lead
    head_start, head_end = _trimmed(text, begin, table.row_starts[0])  # with a delimiter line, a lead-in, if any
    rows = [
        span
        for span in (_trimmed(text, a, b) for a, b in pairwise([*table.row_starts, table.end]))
        if span[0] < span[1]
    ]
    # A row's estimate includes the newline after it (a token to BPE tokenizers, none to WordPiece); the exact
    # count of context + text is checked below.
    header_tokens, head_tokens, *row_tokens = _count(
        counter, [header + "\n", text[head_start:head_end] + "\n", *(text[a:b] + "\n" for a, b in rows)]
    )
    capacity = chunk_tokens - header_tokens
    if not header or not rows or header_tokens > chunk_tokens // _HEADER_FRACTION:
        exact = _splitter(counter, chunk_tokens, 0, markdown=False)
        spans = _split_range(text, begin, table.end, exact)
        return [(*span, "") for span in _enforce_limit(text, spans, counter, chunk_tokens)]

    groups: list[tuple[int, int, str]] = []
    current: list[int] = [head_start, head_end]  # the first group begins with the header itself: no context
    context = ""
    used = max(0, head_tokens - header_tokens)  # a Markdown delimiter line is in the first chunk's text
    for (start, end), tokens in zip(rows, row_tokens, strict=True):
        if tokens > capacity:  # a row longer than the room under the header: cut like text, each piece headed
            if current:
                groups.append((current[0], current[1], context))
            pieces = _split_range(text, start, end, _splitter(counter, capacity, 0, markdown=False))
            groups.extend((piece_start, piece_end, header) for piece_start, piece_end in pieces)
            current, context, used = [], header, 0
        elif current and used + tokens <= capacity:
            current[1], used = end, used + tokens
        else:
            if current:
                groups.append((current[0], current[1], context))
            current, context, used = [start, end], header, tokens
    if current:
        groups.append((current[0], current[1], context))

    counts = _count(counter, [indexed_text(context, text[start:end]) for start, end, context in groups])
    fitted: list[tuple[int, int, int, str]] = []
    for (start, end, context), tokens in zip(groups, counts, strict=True):
        if tokens <= chunk_tokens:
            fitted.append((start, end, tokens, context))
        else:  # the estimate fell short (tokens merging across rows): re-split this group like text
            fitted.extend(_refit(text, start, end, header, head_start, counter, chunk_tokens, tokens))
    return fitted


def _refit(
    text: str,
    start: int,
    end: int,
    header: str,
    head_start: int,
    counter: _Tokenizer,
    chunk_tokens: int,
    tokens: int,
) -> list[tuple[int, int, int, str]]:
    """Pieces of a table's chunk ``[start, end)`` that was ``tokens`` long, each fitting with its context."""
    capacity = chunk_tokens - _count(counter, [header + "\n"])[0]
    for _attempt in range(4):
        capacity -= max(1, tokens - chunk_tokens)
        if capacity < 1:
            break
        spans = _split_range(text, start, end, _splitter(counter, capacity, 0, markdown=False))
        contexts = ["" if piece_start == head_start else header for piece_start, _ in spans]
        counts = _count(counter, [indexed_text(c, text[a:b]) for (a, b), c in zip(spans, contexts, strict=True)])
        if all(count <= chunk_tokens for count in counts):
            return [(a, b, n, c) for (a, b), n, c in zip(spans, counts, contexts, strict=True)]
        tokens = max(counts)
    raise ValueError(f"chunk_tokens={chunk_tokens} is too small for the table rows at offset {start}")


# --------------------------------------------------------------------------------------------- structure


def _ranges(text: str, counter: _Tokenizer, chunk_tokens: int, headings: _HeadingIndex) -> list[tuple[int, int]]:
    """Character ranges to chunk separately: section blocks, with small neighbours merged (see module docs)."""
    cuts = [cut for cut in headings.cuts if 0 < cut < len(text)]
    bounds = [0, *cuts, len(text)]
    blocks = [(a, b) for a, b in pairwise(bounds) if a < b and not text[a:b].isspace()]
    if len(blocks) <= 1:
        return blocks
    counts = _count(counter, [text[a:b] for a, b in blocks])
    stub = chunk_tokens // _STUB_FRACTION
    ranges: list[tuple[int, int]] = []
    cur_start, cur_end = blocks[0]
    cur_tokens = counts[0]
    cur_top = headings.heading_path_at(cur_start)[:1]
    last_path = headings.heading_path_at(cur_start)
    # whole sections: the earliest start and latest end of the sections bounded inside the current range
    inner_low, inner_high = cur_start, cur_end
    for (start, end), tokens in zip(blocks[1:], counts[1:], strict=True):
        path = headings.heading_path_at(start)
        low, high = headings.reach_between(cur_end, start)
        if (
            path[:1] == cur_top
            and (
                cur_tokens + tokens <= chunk_tokens
                or (cur_tokens <= stub and len(path) > len(last_path) and path[: len(last_path)] == last_path)
            )
            and min(inner_low, low) >= cur_start
            and max(inner_high, high) <= end
        ):
            cur_end, cur_tokens = end, cur_tokens + tokens
            inner_low, inner_high = min(inner_low, low), max(inner_high, high)
        else:
            ranges.append((cur_start, cur_end))
            cur_start, cur_end, cur_tokens, cur_top = start, end, tokens, path[:1]
            inner_low, inner_high = start, end
        last_path = path
    ranges.append((cur_start, cur_end))
    return ranges


def _paragraph_runs(text: str, lo: int, hi: int, min_chars: int) -> list[tuple[int, int]]:
    """``text[lo:hi]`` cut after blank lines into runs of at least ``min_chars`` characters.

    Bounds the work of the ，re-run (only runs with an over-long sentence are chunked twice). A chunk then never
    spans such a blank line, which costs one under-filled chunk per ~_RUN_CHUNKS chunks. Not used for markdown,
    where a blank line may lie inside a fenced code block.
    """
    if hi - lo <= min_chars:
        return [(lo, hi)]
    runs: list[tuple[int, int]] = []
    start = lo
    for match in _BLANK_LINE.finditer(text, lo + min_chars, hi):
        if match.end() - start >= min_chars and match.end() < hi:
            runs.append((start, match.end()))
            start = match.end()
    runs.append((start, hi))
    return runs


class _HeadingIndex:
    """``doc.heading_path_at`` in O(log n) per lookup over the elementary intervals between section bounds."""

    def __init__(self, doc: ParsedDocument) -> None:
        sections = [(s.start, s.end, s.heading_path, i) for i, s in enumerate(doc.sections) if s.start < s.end]
        self.cuts: list[int] = sorted({b for s in sections for b in (s[0], s[1])})
        self._paths: list[tuple[str, ...]] = []
        by_start = sorted(sections, key=lambda s: s[0])
        active: list[tuple[int, int, tuple[str, ...], int]] = []
        pending = 0
        for cut in self.cuts[:-1]:
            while pending < len(by_start) and by_start[pending][0] <= cut:
                active.append(by_start[pending])
                pending += 1
            active = [s for s in active if s[1] > cut]
            # heading_path_at keeps the deepest path, the later section winning ties.
            best = max(active, key=lambda s: (len(s[2]), s[3]), default=None)
            self._paths.append(best[2] if best else ())

        # whole sections: per bound, the earliest start and the latest end of the sections that begin or end there
        self.reach: dict[int, tuple[int, int]] = {}
        if doc.whole_sections:
            for start, end, _, _ in sections:
                for bound in (start, end):
                    low, high = self.reach.get(bound, (start, end))
                    self.reach[bound] = (min(low, start), max(high, end))

    def reach_between(self, lo: int, hi: int) -> tuple[int, int]:
        """The earliest start and latest end of the sections bounded in ``[lo, hi]`` (``(hi, hi)`` when none):
        a range that takes in both sides of ``[lo, hi]`` must hold all of them, for whole sections."""
        low, high = hi, hi
        if self.reach:
            for cut in self.cuts[bisect.bisect_left(self.cuts, lo) : bisect.bisect_right(self.cuts, hi)]:
                if cut in self.reach:
                    low, high = min(low, self.reach[cut][0]), max(high, self.reach[cut][1])
        return low, high

    def heading_path_at(self, offset: int) -> tuple[str, ...]:
        index = bisect.bisect_right(self.cuts, offset) - 1
        return self._paths[index] if 0 <= index < len(self._paths) else ()


class _PageIndex:
    """``doc.page_at`` by bisection (pages are in order)."""

    def __init__(self, doc: ParsedDocument) -> None:
        self._doc = doc
        self._starts = [page.start for page in doc.pages]
        self._numbers = [page.number for page in doc.pages]
        self._sorted = all(a <= b for a, b in pairwise(self._starts))

    def page_at(self, offset: int) -> int:
        if not self._sorted:
            return self._doc.page_at(offset)
        if not self._numbers:
            return 1
        index = bisect.bisect_right(self._starts, offset) - 1
        return self._numbers[max(index, 0)]


# --------------------------------------------------------------------------------------------- caches


@dataclass
class _Entry:
    source: Any  # kept alive so its id() cannot be reused while cached
    value: Any


_cache: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(key: tuple[Any, ...], source: Any, build: Callable[[], Any]) -> Any:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry.source is source:
            _cache.move_to_end(key)
            return entry.value
    value = build()
    with _cache_lock:
        _cache[key] = _Entry(source, value)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def _counting_tokenizer(tokenizer: Any) -> _Tokenizer:
    """The tokenizer itself, or a cached copy without padding/truncation (those would distort token counts)."""
    if tokenizer.padding is None and tokenizer.truncation is None:
        return tokenizer  # type: ignore[no-any-return]

    def build() -> Any:
        clone = type(tokenizer).from_str(tokenizer.to_str())
        clone.no_padding()
        clone.no_truncation()
        return clone

    return _cached(("counter", id(tokenizer)), tokenizer, build)  # type: ignore[no-any-return]


def _splitter(counter: _Tokenizer, chunk_tokens: int, overlap_tokens: int, markdown: bool) -> _Splitter:
    """A splitter counting tokens through ``counter``."""
    return _Splitter(counter, chunk_tokens, overlap_tokens, markdown)


class _Splitter:
    """``semantic-text-splitter`` returning ``(start, end)`` character spans of non-blank chunks.

    Built with ``from_callback`` rather than ``from_huggingface_tokenizer``: the latter copies the tokenizer into
    Rust (0.5-0.8 s for Qwen3's vocabulary, per configuration). The callback sizes pieces from one tokenization of
    the text being split (see the module docs); :func:`_enforce_limit` makes the final counts exact.

    semantic-text-splitter 0.33 panics when a chunk's trimmed start lies before the previous chunk's (its
    byte-to-character offset mapping only moves forward). ``MarkdownSplitter`` with overlap does that, because it
    keeps indentation when trimming; so that combination chunks untrimmed (offsets then only move forward) and
    the whitespace is stripped here. Any other such panic falls back to the same.
    """

    def __init__(self, counter: _Tokenizer, chunk_tokens: int, overlap_tokens: int, markdown: bool) -> None:
        self._kind = MarkdownSplitter if markdown else TextSplitter
        self._counter = counter
        self._exact = _counter_callback(counter)
        self._view = ""
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._sizes: dict[str, int] = {}
        self._capacity = chunk_tokens
        self._overlap = overlap_tokens
        self._trim = not (markdown and overlap_tokens > 0)
        self._splitter = self._kind.from_callback(self._size, chunk_tokens, overlap=overlap_tokens, trim=self._trim)

    def _size(self, piece: str) -> int:
        """Tokens of ``piece``: the range's tokens it overlaps, or (not a substring) its own count."""
        size = self._sizes.get(piece)
        if size is None:
            at = self._view.find(piece) if piece else -1
            if at < 0:
                size = self._exact(piece)
            else:
                first = bisect.bisect_right(self._ends, at)  # the first token ending inside or after the piece
                size = bisect.bisect_left(self._starts, at + len(piece)) - first
            self._sizes[piece] = size
        return size

    def spans(self, view: str) -> list[tuple[int, int]]:
        """Chunk ``view``; the library reports character (code point) offsets."""
        self._view = view
        self._sizes.clear()
        offsets = self._counter.encode_batch([view], add_special_tokens=False)[0].offsets if view else []
        self._starts = [start for start, _ in offsets]
        self._ends = [end for _, end in offsets]
        try:
            chunks = self._splitter.chunk_indices(view)
        except BaseException as exc:
            if type(exc).__name__ != "PanicException" or not self._trim:
                raise
            chunks = self._kind.from_callback(
                self._size, self._capacity, overlap=self._overlap, trim=False
            ).chunk_indices(view)
        return [
            (offset + len(chunk) - len(chunk.lstrip()), offset + len(chunk.rstrip()))
            for offset, chunk in chunks
            if chunk.strip()
        ]
