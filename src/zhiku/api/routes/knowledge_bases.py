"""Knowledge bases: create, list, get, update, delete; search; live job events of a knowledge base."""

from __future__ import annotations

import time
from dataclasses import replace

from fastapi import APIRouter, Request, Response
from sse_starlette.sse import EventSourceResponse

from zhiku.api.auth import Reader, Writer
from zhiku.api.deps import AppState, State
from zhiku.api.events import job_events
from zhiku.api.schemas import (
    HitOut,
    JobOut,
    KnowledgeBaseCreate,
    KnowledgeBaseOut,
    KnowledgeBaseUpdate,
    ReindexRequest,
    SearchRequest,
    SearchResponse,
)
from zhiku.api.streams import LimitedEventStream, stream_identity
from zhiku.errors import InvalidInputError
from zhiku.knowledge.bases import (
    create_knowledge_base,
    delete_knowledge_base,
    get_knowledge_base,
    knowledge_base_stats,
    list_knowledge_bases,
    update_knowledge_base,
)
from zhiku.storage.models import KnowledgeBase

router = APIRouter(prefix="/api/v1/knowledge-bases", tags=["knowledge bases"])


def _out(state: AppState, kb: KnowledgeBase) -> KnowledgeBaseOut:
    stats = knowledge_base_stats(state.zhiku, kb)
    return KnowledgeBaseOut.of(kb, stats.documents, stats.chunks)


@router.post("", status_code=201)
def create(body: KnowledgeBaseCreate, state: State, principal: Writer) -> KnowledgeBaseOut:
    """Create a knowledge base in the caller's tenant."""
    kb = create_knowledge_base(
        state.zhiku,
        body.name,
        model=body.model,
        dimension=body.dimension,
        index_dimension=body.index_dimension,
        instruction=body.instruction,
        chunk_tokens=body.chunk_tokens,
        chunk_overlap=body.chunk_overlap,
        description=body.description,
        tenant_id=principal.tenant_id,
        from_api=True,
        created_by=principal.actor,
    )
    return _out(state, kb)


@router.get("")
def list_all(state: State, principal: Reader) -> list[KnowledgeBaseOut]:
    """The tenant's knowledge bases with document and chunk counts."""
    return [_out(state, kb) for kb in list_knowledge_bases(state.zhiku, principal.tenant_id)]


@router.get("/{kb_id}")
def get(kb_id: str, state: State, principal: Reader) -> KnowledgeBaseOut:
    """One knowledge base (by id or name)."""
    return _out(state, get_knowledge_base(state.zhiku, kb_id, principal.tenant_id))


@router.patch("/{kb_id}")
def update(kb_id: str, body: KnowledgeBaseUpdate, state: State, principal: Writer) -> KnowledgeBaseOut:
    """Rename a knowledge base or change its description."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    kb = update_knowledge_base(state.zhiku, kb, name=body.name, description=body.description)
    return _out(state, kb)


@router.delete("/{kb_id}", status_code=204)
def delete(kb_id: str, state: State, principal: Writer) -> Response:
    """Delete a knowledge base with its documents, chunks and vectors."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    delete_knowledge_base(state.zhiku, kb, deleted_by=principal.actor)
    return Response(status_code=204)


@router.post("/{kb_id}/search", response_model=SearchResponse)
def search_kb(kb_id: str, body: SearchRequest, state: State, principal: Reader) -> Response:
    """Dense, lexical or hybrid search with filters; hits carry citations and highlighted passages. The
    ``Server-Timing`` header says where the time went (milliseconds per stage: hyde, filter, embed, dense,
    lexical, fuse, rows, rerank, score, and search for the whole)."""
    from zhiku.search.filters import parse_filters
    from zhiku.search.hyde import hypothetical_answer
    from zhiku.search.options import SearchOptions
    from zhiku.search.retrieve import check_search, search

    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    reranker = None
    if body.rerank:
        reranker = state.settings.reranker
        if reranker is None:
            raise InvalidInputError(
                "this server has no reranker configured: search with rerank=false, or set ZHIKU_RERANKER on the "
                "server (e.g. qwen3-reranker-0.6b)",
                param="rerank",
            )
    options = SearchOptions(
        mode=body.mode,
        top_k=body.top_k,
        document_ids=body.document_ids,
        filter=parse_filters(body.filters),
        min_score=body.min_score,
        neighbours=body.neighbours,
        rerank=reranker,
        hyde=body.hyde,
    )
    started = time.perf_counter()
    stages: dict[str, float] = {}
    if options.hyde:  # asked here, not inside the search, to show the passage with the hits
        check_search(body.query, options)
        options = replace(options, hypothetical_answer=hypothetical_answer(state.settings, body.query))
        stages["hyde"] = (time.perf_counter() - started) * 1000
    hits = search(state.zhiku, kb, body.query, options, stages=stages)
    took = (time.perf_counter() - started) * 1000
    answer = SearchResponse(
        knowledge_base_id=kb.id,
        query=body.query,
        mode=body.mode,
        took_ms=round(took, 2),
        hits=[HitOut.of(h) for h in hits],
        hypothetical_answer=options.hypothetical_answer,
    )
    # serialised here: FastAPI would dump the model, validate the dump in its thread pool (a second hand-over
    # between threads) and serialise it again
    timing = ", ".join(f"{stage};dur={ms:.2f}" for stage, ms in [*stages.items(), ("search", took)])
    return Response(answer.model_dump_json(), media_type="application/json", headers={"Server-Timing": timing})


@router.post("/{kb_id}/reindex", status_code=202)
def reindex(kb_id: str, body: ReindexRequest, state: State, principal: Writer) -> JobOut:
    """Re-embed the knowledge base (e.g. with another model) in the background and switch when done; searches
    keep answering from the old index meanwhile, uploads wait and are ingested with the new model."""
    from zhiku.pipeline.reindex import start_reindex

    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return JobOut.of(
        start_reindex(
            state.zhiku, kb, model=body.model, dimension=body.dimension, from_api=True, created_by=principal.actor
        )
    )


@router.get("/{kb_id}/events", response_class=EventSourceResponse)
def events(kb_id: str, request: Request, state: State, principal: Reader) -> EventSourceResponse:
    """Server-Sent Events: a `job` event whenever a job of this knowledge base changes (status, stage,
    progress); the stream stays open until the client leaves. At most `max_event_streams_per_key` streams per
    key at once (429 beyond)."""
    kb = get_knowledge_base(state.zhiku, kb_id, principal.tenant_id)
    return LimitedEventStream(
        job_events(state.zhiku, kb_id=kb.id),
        slots=state.streams,
        limit=state.settings.max_event_streams_per_key,
        identity=stream_identity(request, principal),
    )
