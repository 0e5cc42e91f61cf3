"""RAG chat, OpenAI chat-completions shaped: retrieves from knowledge bases, answers with a configured chat
model, and returns the numbered sources it gave the model (``sources``) with the answer."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from zhiku.api.auth import authorize
from zhiku.api.deps import AppState, app_state
from zhiku.api.schemas import NOT_BLANK, ErrorResponse, JsonBody
from zhiku.errors import ChatUpstreamError, InvalidInputError, NotConfiguredError
from zhiku.keys import Principal
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.search.filters import parse_filters
from zhiku.search.options import CHAT_MAX_TOP_K, CHAT_TOP_K, SearchOptions
from zhiku.search.rag import build_messages, retrieve_sources

router = APIRouter(prefix="/api/v1/chat", tags=["RAG chat"])
State = Annotated[AppState, Depends(app_state)]
Chatter = Annotated[Principal, Depends(authorize("read", "chat"))]


class ChatMessage(BaseModel):
    """One message of the conversation."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatRequest(JsonBody):
    """An OpenAI chat-completions request plus the knowledge bases to answer from."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"required": ["knowledge_base_id"], "properties": {"knowledge_base_id": {"type": "string"}}},
                {"required": ["knowledge_base_ids"], "properties": {"knowledge_base_ids": {"minItems": 1}}},
            ]
        },
    )

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=200,
        description="The conversation; the last user message with text is the question.",
        json_schema_extra={
            "contains": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"const": "user"}, "content": {"type": "string", "pattern": NOT_BLANK}},
            }
        },
    )
    model: str | None = None
    stream: StrictBool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=100_000)
    knowledge_base_id: str | None = Field(default=None, min_length=1, description="Set this or knowledge_base_ids.")
    knowledge_base_ids: list[str] = Field(default_factory=list, max_length=20)
    top_k: int = Field(default=CHAT_TOP_K, ge=1, le=CHAT_MAX_TOP_K)
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    filters: list[str] = Field(default_factory=list, max_length=50)


_CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The chat server's completion with `sources` added; with `stream: true`, Server-Sent "
        "Events: a first chunk with `sources` and no choices, then the chat server's chunks, then `[DONE]`",
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"sources": {"type": "array"}}}},
            "text/event-stream": {
                "schema": {  # one event
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "description": "A JSON chat.completion.chunk, or [DONE]"},
                        "event": {"type": "string"},
                    },
                }
            },
        },
    },
    501: {"model": ErrorResponse, "description": "No chat model is configured (settings chat_url, chat_model)"},
    502: {"model": ErrorResponse, "description": "The chat server failed"},
}


@router.post("/completions", response_model=None, responses=_CHAT_RESPONSES)
async def completions(body: ChatRequest, state: State, principal: Chatter) -> JSONResponse | StreamingResponse:
    """Answer the last user message from the knowledge bases, citing sources as [n]."""
    settings = state.settings
    if not settings.chat_url:
        raise NotConfiguredError(
            "no chat model is configured: set ZHIKU_CHAT_URL to an OpenAI-compatible server (vLLM, Ollama, ...; "
            "e.g. http://127.0.0.1:11434/v1) and ZHIKU_CHAT_MODEL to its model name"
        )
    ids = [*([body.knowledge_base_id] if body.knowledge_base_id else []), *body.knowledge_base_ids]
    if not ids:
        raise InvalidInputError(
            "name at least one knowledge base: knowledge_base_id or knowledge_base_ids", param="knowledge_base_id"
        )
    question = next((m.content for m in reversed(body.messages) if m.role == "user" and m.content.strip()), "").strip()
    if not question:
        raise InvalidInputError("the conversation has no user message with text to answer", param="messages")
    kbs = [await run_in_threadpool(get_knowledge_base, state.zhiku, kb_id, principal.tenant_id) for kb_id in ids]
    options = SearchOptions(mode=body.mode, top_k=body.top_k, filter=parse_filters(body.filters))
    sources = await run_in_threadpool(retrieve_sources, state.zhiku, kbs, question, options)
    payload: dict[str, Any] = {
        "model": body.model or settings.chat_model or "default",
        "messages": build_messages([m.model_dump() for m in body.messages], sources),
        "stream": body.stream,
    }
    if body.temperature is not None:
        payload["temperature"] = body.temperature
    if body.max_tokens is not None:
        payload["max_tokens"] = body.max_tokens
    cited = [dataclasses.asdict(s) for s in sources]
    headers = {"Authorization": f"Bearer {settings.chat_api_key.get_secret_value()}"} if settings.chat_api_key else {}
    url = settings.chat_url.rstrip("/") + "/chat/completions"
    if not body.stream:
        try:
            async with httpx.AsyncClient(timeout=settings.chat_timeout) as client:
                response = await client.post(url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise ChatUpstreamError(f"chat server {settings.chat_url} failed: {exc or type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ChatUpstreamError(
                f"chat server {settings.chat_url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return JSONResponse({**response.json(), "sources": cited})
    return StreamingResponse(
        _relay(url, payload, headers, settings.chat_timeout, cited, settings.chat_url), media_type="text/event-stream"
    )


async def _relay(
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    timeout: float,
    cited: list[dict[str, Any]],
    server: str,
) -> AsyncIterator[str]:
    """The sources first (a chunk with no choices), then the chat server's chunks as they come."""
    yield (
        "data: "
        + json.dumps({"object": "chat.completion.chunk", "choices": [], "sources": cited}, ensure_ascii=False)
        + "\n\n"
    )
    try:
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("POST", url, json=payload, headers=headers) as response,
        ):
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:300]
                raise ChatUpstreamError(f"chat server {server} answered HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    yield line + "\n\n"
    except (httpx.HTTPError, ChatUpstreamError) as exc:
        error = {"error": {"message": str(exc) or type(exc).__name__, "type": "server_error", "code": "upstream_error"}}
        yield "data: " + json.dumps(error) + "\n\n"
        yield "data: [DONE]\n\n"
