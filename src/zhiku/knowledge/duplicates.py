"""Near-duplicates of a knowledge base: groups of documents (or chunks) that say the same thing — edited copies,
re-saved versions, translations — found from document vectors or the chunks' cached vectors
(:mod:`zhiku.pipeline.near_duplicates`), and keeping one document per group.

Which one is kept: the oldest document (the original upload: the one links, citations and people already point
to; a copy or a translation usually came later), the one with more chunks on a tie. The number of chunks alone
is a poor guide to the most complete text: a copy's typos or another tokenisation can add chunks to less text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select

from zhiku.core import Zhiku
from zhiku.errors import InvalidInputError, NotFoundError
from zhiku.knowledge.documents import delete_document
from zhiku.pipeline.document_vectors import document_vectors
from zhiku.pipeline.duplicate_scan import chunk_vectors, document_texts, is_matryoshka
from zhiku.pipeline.near_duplicates import KINDS, Group, Kind, group_pairs, near_duplicate_pairs, script_hint
from zhiku.storage.models import Document, KnowledgeBase

Level = Literal["documents", "chunks"]
LEVELS: tuple[Level, ...] = get_args(Level)
MIN_THRESHOLD = 0.5
"""The lowest threshold accepted: below it, cosines of unrelated texts of one topic would group everything."""
MAX_GROUPS = 1000
SNIPPET_CHARS = 600


@dataclass(frozen=True)
class Member:
    """A document (or a chunk of one) in a group: what a report shows of it, and its best cosine in the group."""

    document_id: str
    filename: str
    title: str | None
    language: str
    score: float
    chunk_count: int
    created_at: dt.datetime
    text: str
    chunk_id: str | None = None
    ordinal: int | None = None
    page: int | None = None


@dataclass(frozen=True)
class GroupPair:
    """Two members (their positions in the group) and how they are near-duplicates."""

    left: int
    right: int
    score: float
    kind: Kind


@dataclass(frozen=True)
class DuplicateGroup:
    """Members that say the same thing, oldest first; ``keep`` is the position of the one a resolve keeps (the
    first: the oldest, the one with more chunks on a tie)."""

    members: list[Member]
    pairs: list[GroupPair]
    kinds: list[Kind]
    score: float
    keep: int


def check_options(level: str, threshold: float | None, kinds: Sequence[str] | None, default: float) -> float:
    """Validate a request's level, threshold and kinds; return the threshold to use (``default`` when none is
    given; precise 400s otherwise)."""
    if level not in LEVELS:
        raise InvalidInputError(f"level must be one of {', '.join(LEVELS)}; got {level!r}", param="level")
    for kind in kinds or ():
        if kind not in KINDS:
            raise InvalidInputError(f"kinds must be among {', '.join(KINDS)}; got {kind!r}", param="kinds")
    if threshold is None:
        return default
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold != threshold:
        raise InvalidInputError("threshold must be a number", param="threshold")
    if not MIN_THRESHOLD <= threshold <= 1.0:
        raise InvalidInputError(
            f"threshold must be between {MIN_THRESHOLD} and 1 (a cosine); got {threshold}", param="threshold"
        )
    return float(threshold)


def find_duplicates(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    *,
    level: str = "documents",
    threshold: float | None = None,
    kinds: Sequence[str] | None = None,
    limit: int = MAX_GROUPS,
) -> list[DuplicateGroup]:
    """The near-duplicate groups of ``kb``'s ready documents (``level="documents"``, from document vectors) or of
    their chunks (``"chunks"``, chunk vectors from the embedding cache; chunks of one document are not compared),
    largest first. ``kinds`` keeps only pairs of those kinds (``copy``, ``translation``, ``similar``)."""
    cut = check_options(level, threshold, kinds, zhiku.settings.near_duplicate_threshold)
    if level == "chunks":
        return _chunk_groups(zhiku, kb, cut, kinds, limit)
    ids, matrix = document_vectors(zhiku, kb)
    texts = document_texts(zhiku, ids)
    pairs = near_duplicate_pairs(
        matrix, threshold=cut, texts=[texts.get(i, "") for i in ids], matryoshka=is_matryoshka(kb)
    )
    groups = group_pairs([p for p in pairs if not kinds or p.kind in kinds])[:limit]
    documents = _documents(zhiku, {ids[m] for g in groups for m in g.members})
    found: list[DuplicateGroup] = []
    for group in groups:
        if not all(ids[m] in documents for m in group.members):
            continue  # deleted meanwhile
        members = [_member(documents[ids[m]], texts.get(ids[m], ""), group.best_score(m)) for m in group.members]
        found.append(_group(group, members))
    return found


def _chunk_groups(
    zhiku: Zhiku, kb: KnowledgeBase, threshold: float, kinds: Sequence[str] | None, limit: int
) -> list[DuplicateGroup]:
    chunks, matrix = chunk_vectors(zhiku, kb)
    pairs = near_duplicate_pairs(
        matrix,
        threshold=threshold,
        texts=[c.text for c in chunks],
        owners=[c.document_id for c in chunks],
        matryoshka=is_matryoshka(kb),
    )
    groups = group_pairs([p for p in pairs if not kinds or p.kind in kinds])[:limit]
    documents = _documents(zhiku, {chunks[m].document_id for g in groups for m in g.members})
    found: list[DuplicateGroup] = []
    for group in groups:
        if not all(chunks[m].document_id in documents for m in group.members):
            continue
        members = []
        for m in group.members:
            chunk = chunks[m]
            base = _member(documents[chunk.document_id], chunk.text, group.best_score(m))
            members.append(
                Member(**{**base.__dict__, "chunk_id": chunk.id, "ordinal": chunk.ordinal, "page": chunk.page_start})
            )
        found.append(_group(group, members))
    return found


def _documents(zhiku: Zhiku, document_ids: Collection[str]) -> dict[str, Document]:
    """The documents of ``document_ids`` that exist, by id (a few queries, not one per document)."""
    ids = list(document_ids)
    found: dict[str, Document] = {}
    with zhiku.db.session() as session:
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            found.update((d.id, d) for d in session.scalars(select(Document).where(Document.id.in_(batch))))
    return found


def _member(document: Document, text: str, score: float) -> Member:
    return Member(
        document_id=document.id,
        filename=document.filename,
        title=document.title,
        language=script_hint(text),
        score=score,
        chunk_count=document.chunk_count,
        created_at=document.created_at,
        text=text[:SNIPPET_CHARS],
    )


def _group(group: Group, members: list[Member]) -> DuplicateGroup:
    """The group with its members oldest first (the one kept first), pairs by their members' new positions."""
    order = sorted(range(len(members)), key=lambda i: (members[i].created_at, -members[i].chunk_count, i))
    position = {group.members[old]: new for new, old in enumerate(order)}
    return DuplicateGroup(
        members=[members[old] for old in order],
        pairs=[
            GroupPair(
                min(position[p.left], position[p.right]), max(position[p.left], position[p.right]), p.score, p.kind
            )
            for p in group.pairs
        ],
        kinds=group.kinds,
        score=group.score,
        keep=0,
    )


@dataclass(frozen=True)
class Resolution:
    """What keeping one document per group did."""

    kept: list[Member]
    deleted: list[Member]


def keep_one_per_group(
    zhiku: Zhiku,
    kb: KnowledgeBase,
    *,
    threshold: float | None = None,
    kinds: Sequence[str] | None = None,
    keep: Collection[str] | None = None,
) -> Resolution:
    """Delete all but one document of each near-duplicate group (found as :func:`find_duplicates` does).

    Each group keeps its oldest document (the one with more chunks on a tie); with ``keep`` (document ids), only
    the groups holding one of them are resolved, and each keeps that one. ``NotFoundError`` when a ``keep`` id is
    in no group (nothing is deleted then); ``InvalidInputError`` when two of them are in one group.
    """
    groups = find_duplicates(zhiku, kb, threshold=threshold, kinds=kinds)
    chosen: list[tuple[DuplicateGroup, int]] = []
    if keep:
        wanted = set(keep)
        for group in groups:
            hits = [i for i, m in enumerate(group.members) if m.document_id in wanted]
            if len(hits) > 1:
                raise InvalidInputError("keep names two documents of one group; keep one per group", param="keep")
            if hits:
                chosen.append((group, hits[0]))
                wanted.discard(group.members[hits[0]].document_id)
        if wanted:
            raise NotFoundError(f"not in any near-duplicate group: {', '.join(sorted(wanted))}")
    else:
        chosen = [(group, group.keep) for group in groups]
    kept: list[Member] = []
    deleted: list[Member] = []
    for group, index in chosen:
        kept.append(group.members[index])
        others = [m for i, m in enumerate(group.members) if i != index]
        documents = _documents(zhiku, [m.document_id for m in others])
        for member in others:
            if member.document_id in documents:
                delete_document(zhiku, kb, documents[member.document_id])
                deleted.append(member)
    return Resolution(kept, deleted)
