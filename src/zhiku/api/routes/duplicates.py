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
from zhiku.knowledge.duplicates import MAX_GROUPS, check_options, find_duplicates, keep_one_per_group

router = APIRouter(prefix="/api/v1/knowledge-bases/{kb_id}", tags=["duplicates"])


@router.get("/duplicates")
def duplicates(
    kb_id: str,
    state: State,
    principal: Reader,
    level: Annotated[str, Query(max_length=20, description="documents or chunks")] = "documents",
    threshold: Annotated[
        float | None, Query(description="Cosine from 0.5 to 1 (default: the server's near_duplicate_threshold)")
    ] = None,
    kinds: Annotated[
        list[str] | None, Query(max_length=3, description="Only pairs of these kinds: copy, translation, similar")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS, description="Most groups returned, largest first")] = 100,
) -> DuplicatesOut:
    """Groups of documents (or of chunks of different documents) that say the same thing: edited copies, re-saved
    versions, translations."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    cut = check_options(level, threshold, kinds, state.zhiku)
    groups = find_duplicates(state.zhiku, kb, level=level, threshold=cut, kinds=kinds, limit=limit)
    return DuplicatesOut(
        knowledge_base_id=kb.id,
        level="chunks" if level == "chunks" else "documents",
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
