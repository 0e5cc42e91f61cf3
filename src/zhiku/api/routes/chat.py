"""RAG chat, OpenAI chat-completions shaped, at two addresses:

- ``POST /v1/chat/completions``, for any OpenAI chat client (Open WebUI, Chatbox, LobeChat, the ``openai``
  SDK): the ``model`` names the knowledge bases to answer from (``kb:<name>``, ``kb:<a>+<b>``, ``kb:*``; see
  :mod:`zhiku.knowledge.chat_models`), and the answer's text ends with its sources in Markdown, which every such
  client shows.
- ``POST /api/v1/chat/completions``, zhiku's own (the web UI): knowledge bases by id, ``model`` the chat model to
  ask; the sources come only as data. Without knowledge base ids, a ``kb:`` model is read as at ``/v1`` (an
  OpenAI client given the REST API's base URL).

Both retrieve, number the passages, ask the configured chat model (``chat_url``) to answer citing them as [n],
and return the passages as ``sources``. Streamed (``stream: true``), Server-Sent Events: a first chunk with the
assistant role and ``sources``, the chat model's chunks, then ``[DONE]``. Without a chat model configured, the
reply is the retrieved passages with their citations, labelled as such (``retrieval_only: true``), not an error.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator
from starlette.concurrency import run_in_threadpool

from zhiku.api import chat_upstream
from zhiku.api.auth import authorize
from zhiku.api.deps import AppState, app_state
from zhiku.api.schemas import NOT_BLANK, ErrorResponse, JsonBody
from zhiku.errors import ChatUpstreamError, InvalidInputError
from zhiku.keys import Principal
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.chat_models import is_chat_model, knowledge_bases_for_model
from zhiku.search.filters import parse_filters
from zhiku.search.options import CHAT_MAX_TOP_K, CHAT_TOP_K, Mode, SearchOptions
from zhiku.search.rag import build_messages, passages_answer, retrieve_sources, sources_footer
from zhiku.storage.models import KnowledgeBase

router = APIRouter(tags=["RAG chat"])
State = Annotated[AppState, Depends(app_state)]
Chatter = Annotated[Principal, Depends(authorize("read", "chat"))]
MAX_MESSAGE_CHARS = 100_000
_HAS_USER_TEXT: dict[str, Any] = {  # the question: some user message has text
    "contains": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"const": "user"}, "content": {"type": "string", "pattern": NOT_BLANK}},
    }
}


class ChatMessage(BaseModel):
    """One message of the conversation."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class SearchFields(JsonBody):
    """How the passages are retrieved (zhiku's extensions to the OpenAI request)."""

    model_config = ConfigDict(extra="ignore")

    stream: StrictBool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=100_000)
    top_k: int = Field(default=CHAT_TOP_K, ge=1, le=CHAT_MAX_TOP_K, description="Passages given to the model.")
    mode: Mode = "hybrid"
    filters: list[str] = Field(default_factory=list, max_length=50)


class ChatRequest(SearchFields):
    """zhiku's chat request: the OpenAI shape plus the knowledge bases to answer from."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"required": ["knowledge_base_id"], "properties": {"knowledge_base_id": {"type": "string"}}},
                {"required": ["knowledge_base_ids"], "properties": {"knowledge_base_ids": {"minItems": 1}}},
                {"required": ["model"], "properties": {"model": {"type": "string", "pattern": "^kb:"}}},
            ]
        },
    )

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=200,
        description="The conversation; the last user message with text is the question.",
        json_schema_extra=_HAS_USER_TEXT,
    )
    model: str | None = Field(
        default=None,
        max_length=500,
        description="The chat model to ask (default: setting chat_model); or, without knowledge_base_id(s), "
        "`kb:<knowledge base>` as at /v1/chat/completions.",
    )
    knowledge_base_id: str | None = Field(default=None, min_length=1, description="Set this or knowledge_base_ids.")
    knowledge_base_ids: list[str] = Field(default_factory=list, max_length=20)


class TextPart(BaseModel):
    """A text part of a message's content (OpenAI's content-part form)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class OpenAIChatMessage(BaseModel):
    """A message as OpenAI chat clients send it: text, or text parts (images are not read)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(max_length=100)] | None = Field(
        default=None, max_length=MAX_MESSAGE_CHARS
    )

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        """Name the part that is not text (the union's own error would list every shape it tried)."""
        if isinstance(value, list):
            for index, part in enumerate(value):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind != "text":
                    shown = repr(kind)[:40] if isinstance(kind, str) else "no type"
                    raise ValueError(
                        f"part {index} is {shown}: only text parts ({{'type': 'text', 'text': ...}}) are read"
                    )
        elif value is not None and not isinstance(value, str):
            raise ValueError("content must be a string or a list of text parts")
        return value

    def text(self) -> str:
        """The message's text (parts joined by blank lines)."""
        if isinstance(self.content, list):
            return "\n\n".join(part.text for part in self.content)
        return self.content or ""


class OpenAIChatRequest(SearchFields):
    """An OpenAI chat-completions request; ``model`` names the knowledge bases (``kb:<name>``)."""

    model: StrictStr = Field(
        max_length=500,
        description="`kb:<knowledge base>` (name or id), `kb:<a>+<b>` for several, `kb:*` for all of them; "
        "GET /v1/models lists them.",
    )
    messages: list[OpenAIChatMessage] = Field(
        min_length=1,
        max_length=200,
        description="The conversation; the last user message with text is the question.",
        json_schema_extra=_HAS_USER_TEXT,
    )
    max_completion_tokens: int | None = Field(default=None, ge=1, le=100_000)


_CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat completion with `sources` (the numbered passages) added, and `retrieval_only: true` "
        "when no chat model is configured (the reply is then the passages, labelled). With `stream: true`, "
        "Server-Sent Events: a first chunk with the role and `sources`, the answer's chunks, then `[DONE]`",
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
    502: {"model": ErrorResponse, "description": "The chat server failed"},
}


@dataclasses.dataclass(frozen=True)
class _Question:
    """One chat request, whichever route it came by."""

    question: str
    messages: list[dict[str, str]]
    kbs: list[KnowledgeBase]
    options: SearchOptions
    chat_model: str
    shown_model: str | None
    """The ``model`` the reply carries (the id the client asked for), or None for the chat server's own."""
    footer: bool
    """End the answer's text with its sources in Markdown (for clients that show only the text)."""
    stream: bool
    temperature: float | None
    max_tokens: int | None

    @classmethod
    def of(
        cls,
        body: SearchFields,
        question: str,
        messages: list[dict[str, str]],
        kbs: list[KnowledgeBase],
        *,
        chat_model: str,
        shown_model: str | None,
        footer: bool,
    ) -> _Question:
        """A question with the search and sampling fields of ``body``."""
        return cls(
            question=question,
            messages=messages,
            kbs=kbs,
            options=SearchOptions(mode=body.mode, top_k=body.top_k, filter=parse_filters(body.filters)),
            chat_model=chat_model,
            shown_model=shown_model,
            footer=footer,
            stream=body.stream,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
        )


def _last_question(messages: list[dict[str, str]]) -> str:
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user" and m["content"].strip()), "")
    if not question.strip():
        raise InvalidInputError("the conversation has no user message with text to answer", param="messages")
    return question.strip()


@router.post("/v1/chat/completions", response_model=None, responses=_CHAT_RESPONSES)
async def openai_completions(
    body: OpenAIChatRequest, state: State, principal: Chatter
) -> JSONResponse | StreamingResponse:
    """Answer the last user message from the knowledge bases the model names, citing sources as [n] and listing
    them at the end of the answer."""
    # developer is OpenAI's newer name for system; chat servers such as Ollama know only system
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
    question = _last_question(messages)
    kbs = await run_in_threadpool(knowledge_bases_for_model, state.zhiku, body.model, principal.tenant_id)
    chat_model = state.settings.chat_model or "default"
    ask = _Question.of(body, question, messages, kbs, chat_model=chat_model, shown_model=body.model, footer=True)
    return await _answer(state, dataclasses.replace(ask, max_tokens=body.max_completion_tokens or body.max_tokens))


@router.post("/api/v1/chat/completions", response_model=None, responses=_CHAT_RESPONSES)
async def completions(body: ChatRequest, state: State, principal: Chatter) -> JSONResponse | StreamingResponse:
    """Answer the last user message from the knowledge bases, citing sources as [n]."""
    ids = [*([body.knowledge_base_id] if body.knowledge_base_id else []), *body.knowledge_base_ids]
    by_model = not ids and body.model is not None and is_chat_model(body.model)  # an OpenAI client at /api/v1
    if not ids and not by_model:
        raise InvalidInputError(
            "name at least one knowledge base: knowledge_base_id or knowledge_base_ids (or model 'kb:<name>')",
            param="knowledge_base_id",
        )
    messages = [m.model_dump() for m in body.messages]
    question = _last_question(messages)
    if by_model:
        model = str(body.model)
        kbs = await run_in_threadpool(knowledge_bases_for_model, state.zhiku, model, principal.tenant_id)
    else:
        kbs = [await run_in_threadpool(get_knowledge_base, state.zhiku, i, principal.tenant_id) for i in ids]
    chat_model = (None if by_model else body.model) or state.settings.chat_model or "default"
    shown = body.model if by_model else None
    return await _answer(
        state, _Question.of(body, question, messages, kbs, chat_model=chat_model, shown_model=shown, footer=by_model)
    )


async def _answer(state: AppState, ask: _Question) -> JSONResponse | StreamingResponse:
    """Retrieve, then answer with the chat model, or with the passages when there is none."""
    sources = await run_in_threadpool(retrieve_sources, state.zhiku, ask.kbs, ask.question, ask.options)
    cited = [dataclasses.asdict(s) for s in sources]
    reply = _Reply(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), ask.shown_model)
    settings = state.settings
    if not settings.chat_url:
        text = passages_answer(ask.question, sources)
        if ask.stream:
            return _event_stream(reply.passages_chunks(text, cited))
        return JSONResponse(reply.completion(text, cited))
    payload: dict[str, Any] = {"model": ask.chat_model, "messages": build_messages(ask.messages, sources)}
    if ask.temperature is not None:
        payload["temperature"] = ask.temperature
    if ask.max_tokens is not None:
        payload["max_tokens"] = ask.max_tokens
    footer = sources_footer(sources) if ask.footer else ""
    if ask.stream:
        return _event_stream(reply.relayed_chunks(chat_upstream.stream(settings, payload), cited, footer))
    completion = await chat_upstream.complete(settings, payload)
    return JSONResponse({**reply.relabelled(completion, footer), "sources": cited})


@dataclasses.dataclass(frozen=True)
class _Reply:
    """The chat.completion and chat.completion.chunk objects of one reply."""

    id: str
    created: int
    model: str | None

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        """One chunk of a streamed reply."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model or "zhiku",
            "choices": [choice],
            **extra,
        }

    def completion(self, text: str, cited: list[dict[str, Any]]) -> dict[str, Any]:
        """A whole reply made here (the passages, when no chat model is configured)."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model or "zhiku",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "sources": cited,
            "retrieval_only": True,
        }

    def relabelled(self, completion: dict[str, Any], footer: str) -> dict[str, Any]:
        """The chat server's completion under this reply's model id, its answer followed by ``footer``."""
        if self.model:
            completion = {**completion, "model": self.model}
        choices = completion.get("choices")
        if footer and isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                choices[0]["message"] = {**message, "content": message["content"] + footer}
        return completion

    async def passages_chunks(self, text: str, cited: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """The passages reply, streamed: role and sources, the text, the end."""
        yield self.chunk({"role": "assistant", "content": ""}, sources=cited, retrieval_only=True)
        yield self.chunk({"content": text})
        yield self.chunk({}, "stop")

    async def relayed_chunks(
        self, upstream: AsyncIterator[dict[str, Any]], cited: list[dict[str, Any]], footer: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Role and sources first, then the chat server's chunks under this reply's id and model, with ``footer``
        as the last text before the chunk that ends the answer; a failure is an error event."""
        yield self.chunk({"role": "assistant", "content": ""}, sources=cited)
        pending = footer
        try:
            async for chunk in upstream:
                chunk["id"] = self.id
                if self.model:
                    chunk["model"] = self.model
                choices = chunk.get("choices")
                ending = isinstance(choices, list) and any(
                    isinstance(c, dict) and c.get("finish_reason") for c in choices
                )
                if ending and pending:
                    yield self.chunk({"content": pending})
                    pending = ""
                yield chunk
            if pending:
                yield self.chunk({"content": pending})
        except ChatUpstreamError as exc:
            yield {"error": {"message": exc.message, "type": "server_error", "code": exc.code, "param": None}}


def _event_stream(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        async for chunk in chunks:
            yield "data: " + json.dumps(chunk, ensure_ascii=False) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
