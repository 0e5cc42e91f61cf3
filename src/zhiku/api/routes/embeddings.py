"""OpenAI-compatible ``/v1/embeddings``.

Follows the OpenAI API: ``input`` as a string, a list of strings, a token array or a list of token arrays
(OpenAI's cl100k_base ids by default, as LangChain sends them; setting ``token_input``); ``dimensions`` (Matryoshka);
``encoding_format`` float or base64 (little-endian float32); ``user`` (accepted, unused). Extensions:
``input_type`` (``document`` default, or ``query``, which applies the model's query instruction),
``instruction`` (a preset name or a custom task, for instruction-aware models) and ``truncate``
(``end``, ``pool``, ``error``) for inputs over the model's context.
"""

from __future__ import annotations

import base64
import logging
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema

from zhiku.api.auth import authorize
from zhiku.api.deps import AppState, app_state
from zhiku.api.notices import client_label
from zhiku.api.schemas import TEXT_PATTERN, JsonBody, JsonInt
from zhiku.errors import InvalidInputError
from zhiku.keys import Principal

router = APIRouter(tags=["OpenAI-compatible embeddings"])
log = logging.getLogger(__name__)
TRUNCATED_HEADER = "x-zhiku-truncated-inputs"
"""Response header: how many inputs were cut at the model's token limit (sent when any was)."""

InputText = Annotated[
    StrictStr,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": TEXT_PATTERN,
            "description": "Not empty, not only whitespace, no NUL character.",
        }
    ),
]
"""A text input as the schema states it (:func:`zhiku.embedding.base.validate_texts` checks it, with messages)."""
TokenArray = Annotated[
    list[JsonInt], WithJsonSchema({"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1})
]
"""Token ids: OpenAI's cl100k_base ids, or the served model's own (setting ``token_input``); unknown ids are a
400."""


class EmbeddingRequest(JsonBody):
    """An OpenAI embeddings request, plus zhiku's documented extensions."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={  # an instruction is for queries
            "if": {"required": ["instruction"], "properties": {"instruction": {"type": "string"}}},
            "then": {"required": ["input_type"], "properties": {"input_type": {"const": "query"}}},
        },
    )

    input: (
        InputText
        | Annotated[list[InputText], Field(min_length=1)]
        | Annotated[list[TokenArray], Field(min_length=1)]
        | TokenArray
    ) = Field(description="Text, texts, a token array or token arrays.")
    model: StrictStr | None = Field(default=None, description="A served model; default: the first served one.")
    dimensions: int | None = Field(default=None, description="Matryoshka output dimension.")
    encoding_format: Literal["float", "base64"] = "float"
    user: StrictStr | None = None
    input_type: Literal["query", "document"] = Field(
        default="document", description="zhiku extension: `query` applies the model's query instruction."
    )
    instruction: StrictStr | None = Field(
        default=None, description="zhiku extension: instruction preset or custom task for queries."
    )
    truncate: Literal["end", "pool", "error"] | None = Field(
        default=None, description="zhiku extension: what to do with inputs over the model's context."
    )


class EmbeddingItem(BaseModel):
    """One embedding: floats, or base64 of little-endian float32."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    """Tokens the model read."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The OpenAI embeddings response."""

    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class JSONBytes(JSONResponse):
    """A JSON response serialised by orjson (numpy arrays natively; ~10x faster than json for vectors)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise ``content``."""
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _texts(body: EmbeddingRequest, state: AppState, model: str) -> list[str]:
    value = body.input
    if isinstance(value, str):
        return [value]
    if not value:
        raise InvalidInputError("input must not be an empty list", param="input")
    limit = state.settings.max_inputs_per_request
    if len(value) > limit:
        raise InvalidInputError(
            f"input has {len(value):,} items; at most {limit:,} per request (setting max_inputs_per_request)",
            param="input",
        )
    first = value[0]
    if isinstance(first, str):
        return [str(v) for v in value]
    semantics = state.settings.token_input
    if isinstance(first, int):
        return state.embeddings.decode_tokens(model, [value], semantics)  # type: ignore[list-item]
    return state.embeddings.decode_tokens(model, value, semantics)  # type: ignore[arg-type]


@router.post("/v1/embeddings", response_class=JSONBytes, response_model=EmbeddingResponse)
async def create_embeddings(
    body: EmbeddingRequest,
    request: Request,
    state: Annotated[AppState, Depends(app_state)],
    principal: Annotated[Principal, Depends(authorize("read", "embed"))],
) -> JSONBytes:
    """Embed the input with a served model (micro-batched with concurrent requests, cached).

    Inputs cut at the model's token limit (``truncate=end``) are counted in the ``x-zhiku-truncated-inputs``
    header and a metric, and logged once per client."""
    service = state.embeddings
    model = service.resolve(body.model or next(iter(service.specs))).name
    texts = _texts(body, state, model)
    served = await service.embed(
        model,
        texts,
        input_type=body.input_type,
        instruction=body.instruction,
        truncate=body.truncate,
        dimensions=body.dimensions,
    )
    state.metrics.observe_embeddings(model, len(texts), served.prompt_tokens, served.cache_hits, served.truncated)
    headers = {}
    if served.truncated:
        headers[TRUNCATED_HEADER] = str(served.truncated)
        client = client_label(request, principal)
        if state.truncation_notices.first(client):
            limit = service.specs[model].max_tokens
            log.warning(
                "%s sent %d input(s) over model %s's %d-token limit; each was cut there and its end not read "
                "(truncate=end). Send smaller chunks, or truncate=pool to embed all of the text (the server's "
                "default, ZHIKU_DEFAULT_TRUNCATE). Logged once per client.",
                client,
                served.truncated,
                service.public_name(model),
                limit,
            )
    vectors = served.vectors
    data: list[dict[str, Any]]
    if body.encoding_format == "base64":
        little = vectors.astype("<f4", copy=False)
        data = [
            {"object": "embedding", "index": i, "embedding": base64.b64encode(little[i].tobytes()).decode()}
            for i in range(len(texts))
        ]
    else:
        data = [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in range(len(texts))]
    usage = {"prompt_tokens": served.prompt_tokens, "total_tokens": served.prompt_tokens}
    return JSONBytes(
        {"object": "list", "data": data, "model": service.public_name(model), "usage": usage}, headers=headers
    )
