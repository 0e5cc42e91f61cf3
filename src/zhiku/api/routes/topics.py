"""The topic map of a knowledge base: its documents in clusters named by their distinctive terms, with a 2-D
layout for the web UI (:mod:`zhiku.knowledge.topics`). Runs in the thread pool: a first map of a large knowledge
base takes a few seconds; later ones come from the cache until the documents change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zhiku.api.auth import Reader
from zhiku.api.deps import State
from zhiku.api.schemas import TopicMapOut
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.topics import MAX_CLUSTERS, MIN_CLUSTERS, topic_map

router = APIRouter(prefix="/api/v1/knowledge-bases/{kb_id}", tags=["topics"])


@router.get("/topics")
def topics(
    kb_id: str,
    state: State,
    principal: Reader,
    clusters: Annotated[
        int | None,
        Query(
            ge=MIN_CLUSTERS,
            le=MAX_CLUSTERS,
            description="Number of clusters (at most the number of ready documents); chosen automatically when absent.",
        ),
    ] = None,
) -> TopicMapOut:
    """The knowledge base's ready documents in clusters, each named by a few distinctive terms, and a position in
    -1..1 for each document and cluster centre."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return TopicMapOut.of(topic_map(state.zhiku, kb, clusters=clusters))
