"""Knowledge bases as the "models" of OpenAI-compatible chat: a chat client picks what to answer from by model
name, the only choice such clients let a user make.

``kb:<name>`` answers from one knowledge base (its name or id), ``kb:<a>+<b>`` from several (names cannot
contain ``+``), ``kb:*`` from all of the tenant's (the first :data:`MAX_CHAT_KNOWLEDGE_BASES` by name).
"""

from __future__ import annotations

from zhiku.core import Zhiku
from zhiku.errors import NotFoundError, UnknownModelError
from zhiku.knowledge.bases import get_knowledge_base, list_knowledge_bases
from zhiku.storage.models import KnowledgeBase

PREFIX = "kb:"
ALL = PREFIX + "*"
MAX_CHAT_KNOWLEDGE_BASES = 20
"""The most knowledge bases one chat answer searches (each is a search)."""


def chat_model_id(kb: KnowledgeBase) -> str:
    """The chat model id that answers from ``kb``."""
    return PREFIX + kb.name


def is_chat_model(model: str) -> bool:
    """True for ids of the ``kb:`` form (which may still name no knowledge base)."""
    return model.startswith(PREFIX)


def knowledge_bases_for_model(zhiku: Zhiku, model: str, tenant_id: str) -> list[KnowledgeBase]:
    """The knowledge bases a ``kb:`` model id names, or ``UnknownModelError`` (404, param ``model``)."""
    shown = repr(model if len(model) <= 100 else model[:100] + "…")
    if not is_chat_model(model):
        raise UnknownModelError(
            f"model {shown} is not a chat model here: chat answers from knowledge bases, named as model "
            "'kb:<knowledge base>' (or 'kb:<a>+<b>', or 'kb:*' for all); GET /v1/models lists them",
            param="model",
        )
    rest = model[len(PREFIX) :]
    if rest == "*":
        kbs = list_knowledge_bases(zhiku, tenant_id)[:MAX_CHAT_KNOWLEDGE_BASES]
        if not kbs:
            raise UnknownModelError("model 'kb:*': there is no knowledge base yet; create one first", param="model")
        return kbs
    names = [name.strip() for name in rest.replace(",", "+").split("+")]
    if not all(names):
        raise UnknownModelError(
            f"model {shown} names an empty knowledge base: 'kb:<name>' or 'kb:<a>+<b>'", param="model"
        )
    if len(names) > MAX_CHAT_KNOWLEDGE_BASES:
        raise UnknownModelError(
            f"model {shown} names {len(names)} knowledge bases; at most {MAX_CHAT_KNOWLEDGE_BASES}", param="model"
        )
    found: dict[str, KnowledgeBase] = {}
    for name in names:
        try:
            kb = get_knowledge_base(zhiku, name, tenant_id)
        except NotFoundError:
            short = name if len(name) <= 100 else name[:100] + "…"
            raise UnknownModelError(
                f"model {shown}: no knowledge base named {short!r} (GET /v1/models lists the chat models)",
                param="model",
            ) from None
        found.setdefault(kb.id, kb)
    return list(found.values())
