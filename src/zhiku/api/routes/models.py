"""``/v1/models`` (and ``/api/v1/models``, for clients given the REST API's base URL): what a client may name as
``model``. The served embedding models, with zhiku's details (dimensions, context, Matryoshka), and the chat
models: one per knowledge base of the caller's tenant (``kb:<name>``), and ``kb:*`` for all of them."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from zhiku.api.auth import authorize
from zhiku.api.deps import AppState, app_state
from zhiku.api.routes.embeddings import JSONBytes
from zhiku.embedding.models import ModelSpec
from zhiku.errors import UnknownModelError
from zhiku.keys import Principal
from zhiku.knowledge.bases import list_knowledge_bases
from zhiku.knowledge.chat_models import ALL, chat_model_id, is_chat_model, knowledge_bases_for_model
from zhiku.storage.models import KnowledgeBase

router = APIRouter(tags=["Models"])
State = Annotated[AppState, Depends(app_state)]
Reader = Annotated[Principal, Depends(authorize("read", "read"))]


class ModelCard(BaseModel):
    """A served embedding model, OpenAI style, with zhiku's details."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    dimensions: int
    min_dimensions: int | None
    max_tokens: int
    matryoshka: bool
    instruction_aware: bool


class ChatModelCard(BaseModel):
    """A chat model: answers from the knowledge bases it names (``POST /v1/chat/completions``)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    knowledge_base_ids: list[str]


class ModelList(BaseModel):
    """The served embedding models, then the chat models of the caller's tenant."""

    object: Literal["list"] = "list"
    data: list[ModelCard | ChatModelCard]


def _embedding_card(spec: ModelSpec, public_name: str, created: int) -> dict[str, Any]:
    """A served model as the OpenAI API describes one (under the id clients see), with zhiku's details."""
    return {
        "id": public_name,
        "object": "model",
        "created": created,
        "owned_by": "zhiku",
        "dimensions": spec.dimension,
        "min_dimensions": spec.min_dimension,
        "max_tokens": spec.max_tokens,
        "matryoshka": spec.matryoshka,
        "instruction_aware": spec.instruction_aware,
    }


def _chat_card(model_id: str, kbs: list[KnowledgeBase]) -> dict[str, Any]:
    created = min((kb.created_at for kb in kbs), default=None)
    return {
        "id": model_id,
        "object": "model",
        "created": int(created.timestamp()) if created else int(time.time()),
        "owned_by": "zhiku",
        "knowledge_base_ids": [kb.id for kb in kbs],
    }


async def _list(state: AppState, principal: Principal) -> JSONBytes:
    created = int(time.time())
    service = state.embeddings
    data = [_embedding_card(spec, service.public_name(spec.name), created) for spec in service.specs.values()]
    kbs = await run_in_threadpool(list_knowledge_bases, state.zhiku, principal.tenant_id)
    data += [_chat_card(chat_model_id(kb), [kb]) for kb in kbs]
    if len(kbs) > 1:
        data.append(_chat_card(ALL, kbs))
    return JSONBytes({"object": "list", "data": data})


async def _retrieve(model_id: str, state: AppState, principal: Principal) -> JSONBytes:
    if is_chat_model(model_id):
        kbs = await run_in_threadpool(knowledge_bases_for_model, state.zhiku, model_id, principal.tenant_id)
        return JSONBytes(_chat_card(model_id, kbs))
    try:
        spec = state.embeddings.resolve(model_id)
    except UnknownModelError as exc:
        raise UnknownModelError(f"{exc.message}; chat models: 'kb:<knowledge base>'", param="model") from None
    return JSONBytes(_embedding_card(spec, state.embeddings.public_name(spec.name), int(time.time())))


@router.get("/v1/models", response_class=JSONBytes, response_model=ModelList)
async def list_models(state: State, principal: Reader) -> JSONBytes:
    """The served embedding models (dimensions, context, Matryoshka), then one chat model per knowledge base of
    the caller's tenant (``kb:<name>``) and ``kb:*`` for all of them."""
    return await _list(state, principal)


@router.get("/api/v1/models", response_class=JSONBytes, response_model=ModelList)
async def list_models_under_api(state: State, principal: Reader) -> JSONBytes:
    """As ``GET /v1/models``, for clients given the REST API's base URL (``/api/v1``)."""
    return await _list(state, principal)


@router.get("/v1/models/{model_id:path}", response_class=JSONBytes, response_model=ModelCard | ChatModelCard)
async def retrieve_model(model_id: Annotated[str, Path(max_length=500)], state: State, principal: Reader) -> JSONBytes:
    """One model by its name or an alias (the `openai` client's `models.retrieve`): a served embedding model or a
    ``kb:`` chat model; 404 naming the served models otherwise."""
    return await _retrieve(model_id, state, principal)


@router.get("/api/v1/models/{model_id:path}", response_class=JSONBytes, response_model=ModelCard | ChatModelCard)
async def retrieve_model_under_api(
    model_id: Annotated[str, Path(max_length=500)], state: State, principal: Reader
) -> JSONBytes:
    """As ``GET /v1/models/{model_id}``, under ``/api/v1``."""
    return await _retrieve(model_id, state, principal)
