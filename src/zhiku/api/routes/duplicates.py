"""Near-duplicates of a knowledge base: the groups of documents (or chunks) that say the same thing, and keeping
one document per group."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from zhiku.api.auth import Reader, Writer
from zhiku.api.deps import State
from zhiku.api.schemas import (
    DuplicateGroupOut,
    DuplicateMemberOut,
    DuplicatesOut,
    DuplicatesResolve,
    DuplicatesResolved,
)
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.duplicates import (
    MAX_GROUPS,
    MIN_THRESHOLD,
    Level,
    check_options,
    find_duplicates,
    keep_one_per_group,
)
from zhiku.pipeline.near_duplicates import Kind

router = APIRouter(prefix="/api/v1/knowledge-bases/{kb_id}", tags=["duplicates"])


@router.get("/duplicates")
def duplicates(
    kb_id: str,
    state: State,
    principal: Reader,
    level: Annotated[Level, Query(description="documents, or chunks (of different documents)")] = "documents",
    threshold: Annotated[
        float | None,
        Query(ge=MIN_THRESHOLD, le=1.0, description="Cosine from 0.5 to 1 (default: setting near_duplicate_threshold)"),
    ] = None,
    kinds: Annotated[list[Kind] | None, Query(max_length=3, description="Only pairs of these kinds")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS, description="Most groups returned, largest first")] = 100,
) -> DuplicatesOut:
    """Groups of documents (or of chunks of different documents) that say the same thing: edited copies, re-saved
    versions, translations."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    cut = check_options(level, threshold, kinds, state.zhiku.settings.near_duplicate_threshold)
    groups = find_duplicates(state.zhiku, kb, level=level, threshold=cut, kinds=kinds, limit=limit)
    return DuplicatesOut(
        knowledge_base_id=kb.id,
        level=level,
        threshold=cut,
        groups=[DuplicateGroupOut.model_validate(asdict(group)) for group in groups],
    )


@router.post("/duplicates/resolve")
def resolve(kb_id: str, body: DuplicatesResolve, state: State, principal: Writer) -> DuplicatesResolved:
    """Keep one document per near-duplicate group and delete the others (only the groups of ``keep``'s documents,
    when given)."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    done = keep_one_per_group(state.zhiku, kb, threshold=body.threshold, kinds=body.kinds, keep=body.keep)
    return DuplicatesResolved(
        kept=[DuplicateMemberOut.model_validate(asdict(m)) for m in done.kept],
        deleted=[DuplicateMemberOut.model_validate(asdict(m)) for m in done.deleted],
    )
