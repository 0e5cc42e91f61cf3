"""Dense, lexical and hybrid retrieval over a knowledge base, with citations.

Candidates come from the vector store (dense: cosine; lexical: BM25 with the multilingual tokenizer). Hybrid is
zhiku's own fusion of the two (:mod:`zhiku.search.fusion`). Only chunks of a document's active version are
returned, so a re-ingestion in flight never shows half of two versions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from zhiku.core import Zhiku
from zhiku.documents.types import indexed_text
from zhiku.errors import InvalidInputError, NotFoundError
from zhiku.search.filters import matching_documents
from zhiku.search.fusion import coverage_of, fuse, lexical_weight, term_coverage
from zhiku.search.highlight import highlight_spans, mark
from zhiku.search.hyde import fuse_vectors, hypothetical_answer
from zhiku.search.options import MAX_QUERY_CHARS, MAX_TOP_K, MODES, SearchOptions
from zhiku.search.relevance import cosine_scale, hybrid_relevance, in_rank_order
from zhiku.search.rerank import Reranker, create_reranker
from zhiku.storage.models import Chunk, Document, DocumentTag, KnowledgeBase
from zhiku.storage.vectors.base import SearchFilter
from zhiku.text.terms import query_terms

CANDIDATES = 50


@dataclass
class Hit:
    """One search result with everything needed to cite it."""

    chunk_id: str
    document_id: str
    filename: str
    source: str
    title: str | None
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    ordinal: int
    heading_path: list[str]
    text: str
    score: float
    scores: dict[str, float]
    highlights: list[tuple[int, int]] = field(default_factory=list)
    """Spans of query terms in ``text`` (offsets into ``text``; add ``char_start`` for document offsets)."""
    context_before: str = ""
    context_after: str = ""
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    ocr_confidence: float | None = None
    """When the passage was read by OCR from a scan: the lowest OCR confidence (0-1) of its pages."""
    context: str = ""
    """The header row(s) of the table whose rows ``text`` holds ("" otherwise): shown above the passage, not in it."""

    @property
    def highlighted(self) -> str:
        """The passage, HTML-escaped, with query terms wrapped in ``<mark>`` (safe to insert as HTML)."""
        return mark(self.text, self.highlights)

    @property
    def indexed_text(self) -> str:
        """The passage as it was embedded and indexed: after its context (a table's header), if any."""
        return indexed_text(self.context, self.text)


class StageClock:
    """Milliseconds spent in each stage of a search, added up in ``stages`` (names: see :data:`STAGES`)."""

    def __init__(self, stages: dict[str, float] | None) -> None:
        self.stages = stages
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        """The time since the last mark was spent in ``stage``."""
        now = time.perf_counter()
        if self.stages is not None:
            self.stages[stage] = self.stages.get(stage, 0.0) + (now - self.last) * 1000
        self.last = now


STAGES = ("filter", "embed", "dense", "lexical", "fuse", "rows", "rerank", "score")
"""A search's stages, in order: the filter's documents (SQL), the query embedding (and HyDE's), the two store
queries, fusion, reading the hits' rows (SQL), reranking, relevance scores, highlights and context."""


def search(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    query: str,
    options: SearchOptions | None = None,
    *,
    stages: dict[str, float] | None = None,
) -> list[Hit]:
    """Search ``kb`` for ``query``; hits are chunks of active document versions, best first. ``stages``, when
    given, receives the milliseconds spent in each of :data:`STAGES` (the API sends them as ``Server-Timing``)."""
    options = options or SearchOptions()
    _validate(query, options)
    clock = StageClock(stages)
    try:
        return _search(zhiku, kb, query, options, clock)
    except NotFoundError:
        # a re-index switched the knowledge base to a new collection (and model) after ``kb`` was read and
        # dropped the old one: search again with the current row
        with zhiku.db.session() as session:
            current = session.get(KnowledgeBase, kb.id)
        if current is None or current.collection == kb.collection:
            raise
        return _search(zhiku, current, query, options, clock)


def _search(zhiku: Zhiku, kb: KnowledgeBase, query: str, options: SearchOptions, clock: StageClock) -> list[Hit]:
    wanted = max(CANDIDATES, options.top_k * 3)
    # one collection per knowledge base: a kb_id condition would only cost time (~1 ms at 100k chunks)
    flt = SearchFilter(document_ids=_allowed_documents(zhiku, kb, options))
    clock.mark("filter")
    if flt.matches_nothing:
        return []
    dense: dict[str, float] = {}
    lexical: dict[str, float] = {}
    texts: dict[str, str] = {}  # the lexical hits' indexed text (the dense side is asked for no payload: faster)
    if options.mode in ("dense", "hybrid"):
        embedder = zhiku.embedder_for(kb)
        vector = zhiku.query_vectors.vector(
            embedder, kb.embedding_model, query, instruction=kb.instruction, dimensions=kb.dimension
        )
        if options.hyde:
            passage = options.hypothetical_answer or hypothetical_answer(zhiku.settings, query)
            written = embedder.embed(passage, input_type="document", dimensions=kb.dimension).vectors[0]
            vector = fuse_vectors(vector, written)
        clock.mark("embed")
        for found in zhiku.vectors.search_dense(kb.collection, vector, top_k=wanted, filter=flt, with_payload=False):
            dense[found.id] = found.score
        clock.mark("dense")
    if options.mode in ("lexical", "hybrid"):
        for found in zhiku.vectors.search_text(kb.collection, query, top_k=wanted, filter=flt):
            lexical[found.id] = found.score
            texts[found.id] = str(found.payload.get("text", ""))
        clock.mark("lexical")
    weight = 0.0  # the lexical side's say in hybrid fusion
    if options.mode == "dense":
        fused = dense
    elif options.mode == "lexical":
        fused = lexical
    else:
        best_lexical = max(lexical, key=lexical.__getitem__, default=None)
        coverage = term_coverage(query, texts[best_lexical]) if best_lexical else 0.0
        weight = lexical_weight(coverage) if dense and lexical else (1.0 if lexical else 0.0)
        fused = fuse(dense, lexical, coverage)
    ranked = sorted(fused, key=fused.__getitem__, reverse=True)
    limit = max(options.top_k, options.rerank_candidates) if options.rerank else options.top_k
    clock.mark("fuse")
    hits = _materialise(zhiku, ranked, _Candidates(fused, dense, lexical), options, limit)
    clock.mark("rows")
    if options.rerank and hits:
        scores = reranker_for(zhiku, options.rerank).score(query, [hit.indexed_text for hit in hits])
        for hit, value in zip(hits, scores, strict=True):
            hit.scores["rerank"] = hit.score = float(value)
        hits = sorted(hits, key=lambda hit: hit.score, reverse=True)[: options.top_k]
        clock.mark("rerank")
    terms = query_terms(query)
    _score_relevance(zhiku, kb, hits, terms, options, candidates=list(dense.values()), weight=weight)
    if options.min_score is not None:
        hits = [hit for hit in hits if hit.score >= options.min_score]
    for hit in hits:
        hit.highlights = highlight_spans(hit.text, terms)
    if options.neighbours > 0:
        _expand(zhiku, hits, options.neighbours)
    clock.mark("score")
    return hits


def _score_relevance(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    hits: list[Hit],
    terms: list[str],
    options: SearchOptions,
    *,
    candidates: list[float],
    weight: float,
) -> None:
    """Set each hit's ``score`` to its relevance on the 0-1 scale of :mod:`zhiku.search.relevance` (the raw
    scores stay in ``scores``); ``candidates`` are the dense side's cosines (a hit it did not find is given the
    lowest)."""
    if not hits:
        return
    if options.rerank:
        values = np.asarray([hit.scores["rerank"] for hit in hits])
    else:
        lexical = np.asarray([coverage_of(terms, hit.indexed_text) for hit in hits])  # the header's words count
        if options.mode == "lexical":
            values = lexical
        else:
            scale = cosine_scale(zhiku.embedder_for(kb), kb.instruction, kb.dimension)
            floor = min(candidates, default=0.0)
            cosines = np.asarray([hit.scores.get("dense", floor) for hit in hits])
            dense = scale.relevance(cosines, candidates)
            values = dense if options.mode == "dense" else hybrid_relevance(dense, lexical, weight)
    for hit, value in zip(hits, in_rank_order(np.clip(values, 0.0, 1.0).tolist()), strict=True):
        hit.score = round(value, 4)


_rerankers: dict[str, Reranker] = {}
_rerankers_lock = threading.Lock()


def reranker_for(zhiku: Zhiku, name: str) -> Reranker:
    """The process-wide reranker ``name``, loaded on first use."""
    with _rerankers_lock:
        if name not in _rerankers:
            _rerankers[name] = create_reranker(name, zhiku.settings)
        return _rerankers[name]


def _allowed_documents(zhiku: Zhiku, kb: KnowledgeBase, options: SearchOptions) -> list[str] | None:
    """The document ids a search may return (``None``: all), from ``document_ids`` and ``filter`` together."""
    allowed = list(options.document_ids) if options.document_ids is not None else None
    if options.filter is None or options.filter.is_empty:
        return allowed
    with zhiku.db.session() as session:
        matching = matching_documents(session, kb.id, options.filter)
    return matching if allowed is None else sorted(set(matching) & set(allowed))


def _validate(query: str, options: SearchOptions) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("query must be a non-empty string", param="query")
    if "\x00" in query:
        raise InvalidInputError("query contains a NUL byte", param="query")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"query has {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}", param="query")
    if options.mode not in MODES:
        raise InvalidInputError(f"mode must be dense, lexical or hybrid; got {options.mode!r}", param="mode")
    if not 1 <= options.top_k <= MAX_TOP_K:
        raise InvalidInputError(f"top_k must be 1 to {MAX_TOP_K}, got {options.top_k}", param="top_k")
    if not 1 <= options.rerank_candidates <= 200:
        raise InvalidInputError(
            f"rerank_candidates must be 1 to 200, got {options.rerank_candidates}", param="rerank_candidates"
        )
    if not 0 <= options.neighbours <= 10:
        raise InvalidInputError(f"neighbours must be 0 to 10, got {options.neighbours}", param="neighbours")
    if options.hyde and options.mode == "lexical":
        raise InvalidInputError("hyde works on vectors: use it with mode dense or hybrid, not lexical", param="hyde")
    if options.hypothetical_answer is not None and (
        not options.hypothetical_answer.strip() or len(options.hypothetical_answer) > MAX_QUERY_CHARS
    ):
        raise InvalidInputError(
            f"hypothetical_answer must be 1 to {MAX_QUERY_CHARS:,} characters of text", param="hypothetical_answer"
        )


def check_search(query: str, options: SearchOptions) -> None:
    """Raise :class:`InvalidInputError` for a query or options no search accepts (what :func:`search` checks
    first; the CLI checks it before it sends a search to a server, for the same messages)."""
    _validate(query, options)


@dataclass(frozen=True)
class _Candidates:
    """The two lists' candidates: fused, dense and lexical scores by point id."""

    fused: dict[str, float]
    dense: dict[str, float]
    lexical: dict[str, float]


def _materialise(
    zhiku: Zhiku, ranked: list[str], candidates: _Candidates, options: SearchOptions, limit: int
) -> list[Hit]:
    """Join ranked point ids with the metadata DB, dropping inactive versions, up to ``limit`` hits.

    Rows are read for the best ``limit`` candidates (and a few more), then for further ones only while stale
    vectors left the list short: reading every candidate's chunk and document took half of a search's time."""
    hits: list[Hit] = []
    start, batch = 0, limit + 5
    with zhiku.db.session() as session:
        while len(hits) < limit and start < len(ranked):
            wanted = ranked[start : start + batch]
            start, batch = start + batch, 2 * batch
            _materialise_batch(session, wanted, candidates, options, limit, hits)
    return hits


_HIT_ROWS = (
    select(
        *(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.text, Chunk.context, Chunk.heading_path),
        *(Chunk.page_start, Chunk.page_end, Chunk.char_start, Chunk.char_end),
        *(Document.filename, Document.source, Document.title, Document.meta, Document.ocr_pages),
    )
    .join(Document, Chunk.document_id == Document.id)
    .where(Chunk.id.in_(bindparam("ids", expanding=True)), Chunk.version == Document.version, Document.version > 0)
)
"""Chunks ``ids`` of active document versions, with the columns a hit shows (built once: building the statement
took as long as running it)."""
_DOCUMENT_TAGS = (
    select(DocumentTag.document_id, DocumentTag.tag)
    .where(DocumentTag.document_id.in_(bindparam("documents", expanding=True)))
    .order_by(DocumentTag.tag)
)


def _materialise_batch(
    session: Session, ranked: list[str], candidates: _Candidates, options: SearchOptions, limit: int, hits: list[Hit]
) -> None:
    """Append the hits of ``ranked`` (in order, stale ones dropped) to ``hits`` until it holds ``limit``.

    One query for the chunks of active versions with their documents' columns, one for the documents' tags:
    plain rows of the columns a hit shows, not ORM objects (their bookkeeping cost more than the queries)."""
    rows = {row.id: row for row in session.execute(_HIT_ROWS, {"ids": ranked})}
    tags: dict[str, list[str]] = {}
    documents = list({row.document_id for row in rows.values()})
    for document_id, tag in session.execute(_DOCUMENT_TAGS, {"documents": documents}):
        tags.setdefault(document_id, []).append(tag)
    for point_id in ranked:
        chunk = rows.get(point_id)
        if chunk is None:
            continue  # a stale vector of a replaced version, or of a document being deleted
        score = candidates.fused[point_id]
        scores = {"fused": score} if options.mode == "hybrid" else {}
        if point_id in candidates.dense:
            scores["dense"] = candidates.dense[point_id]
        if point_id in candidates.lexical:
            scores["lexical"] = candidates.lexical[point_id]
        hits.append(
            Hit(
                chunk_id=chunk.id,
                document_id=chunk.document_id,
                filename=chunk.filename,
                source=chunk.source,
                title=chunk.title,
                page_start=chunk.page_start,
                page_end=chunk.page_end,
                char_start=chunk.char_start,
                char_end=chunk.char_end,
                ordinal=chunk.ordinal,
                heading_path=list(chunk.heading_path),
                text=chunk.text,
                score=score,
                scores=scores,
                tags=tags.get(chunk.document_id, []),
                metadata=dict(chunk.meta),
                ocr_confidence=_ocr_confidence(chunk.ocr_pages, chunk.page_start, chunk.page_end),
                context=chunk.context,
            )
        )
        if len(hits) == limit:
            return


def _ocr_confidence(ocr_pages: dict[str, float], start: int, end: int) -> float | None:
    """The lowest OCR confidence of the pages ``start``-``end`` that were read by OCR; ``None`` if none was."""
    confidences = [ocr_pages[str(page)] for page in range(start, end + 1) if str(page) in ocr_pages]
    return min(confidences) if confidences else None


def _expand(zhiku: Zhiku, hits: list[Hit], neighbours: int) -> None:
    """Attach the text of up to ``neighbours`` chunks before and after each hit (overlaps removed)."""
    with zhiku.db.session() as session:
        for hit in hits:
            hit.context_before, hit.context_after = _context(
                session, hit.document_id, None, hit.ordinal, hit.char_start, hit.char_end, neighbours
            )


def _context(
    session: Session, document_id: str, version: int | None, ordinal: int, start: int, end: int, neighbours: int
) -> tuple[str, str]:
    """The text of up to ``neighbours`` chunks before and after chunk ``ordinal`` of a document's ``version``
    (``None``: the active one), overlaps with the chunk's own span ``[start, end)`` removed."""
    same_version = Chunk.version == (Document.version if version is None else version)
    rows = list(
        session.scalars(
            select(Chunk)
            .join(Document, Chunk.document_id == Document.id)
            .where(
                Chunk.document_id == document_id,
                same_version,
                Chunk.ordinal.between(ordinal - neighbours, ordinal + neighbours),
                Chunk.ordinal != ordinal,
            )
            .order_by(Chunk.ordinal)
        )
    )
    before = stitch([c for c in rows if c.ordinal < ordinal], until=start)
    after = stitch([c for c in rows if c.ordinal > ordinal], start=end)
    return before, after


@dataclass(frozen=True)
class ChunkInContext:
    """A chunk of an active document version with the text of its neighbours."""

    chunk: Chunk
    context_before: str
    context_after: str


def chunk_in_context(zhiku: Zhiku, kb: KnowledgeBase, chunk_id: str, neighbours: int) -> ChunkInContext:
    """Chunk ``chunk_id`` of an active document version in ``kb``, with up to ``neighbours`` chunks' text each
    side, or ``NotFoundError``."""
    with zhiku.db.session() as session:
        row = session.scalar(
            select(Chunk)
            .join(Document, Chunk.document_id == Document.id)
            .where(Chunk.id == chunk_id, Document.kb_id == kb.id, Chunk.version == Document.version)
        )
        if row is None:
            raise NotFoundError(f"no chunk {chunk_id!r} in knowledge base {kb.name!r}")
        before, after = _context(
            session, row.document_id, row.version, row.ordinal, row.char_start, row.char_end, neighbours
        )
    return ChunkInContext(row, before, after)


def stitch(chunks: list[Chunk], *, until: int | None = None, start: int | None = None) -> str:
    """Join chunk texts by their offsets, dropping overlaps, clipped to end before ``until`` or begin at ``start``."""
    pieces: list[str] = []
    cursor = start if start is not None else (chunks[0].char_start if chunks else 0)
    for chunk in chunks:
        begin, end = max(chunk.char_start, cursor), chunk.char_end if until is None else min(chunk.char_end, until)
        if end <= begin:
            continue
        if pieces and begin > cursor:
            pieces.append("\n")
        pieces.append(chunk.text[begin - chunk.char_start : end - chunk.char_start])
        cursor = end
    return "".join(pieces)


def latency_percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 of ``samples`` (seconds), in milliseconds."""
    if not samples:
        return 0.0, 0.0
    values = np.asarray(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))
