"""Retrieval-augmented answers: retrieve from knowledge bases, number the sources, ask an OpenAI-compatible
chat model to answer citing them as [1], [2], ..."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zhiku.core import Zhiku
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import Hit, search
from zhiku.storage.models import KnowledgeBase

SYSTEM_PROMPT = """You answer questions using only the numbered sources below. Cite the sources you use with \
their numbers in square brackets, e.g. [1] or [2][3], right after the statement they support. If the sources do \
not contain the answer, say so plainly instead of guessing. Answer in the language of the question.

Sources:
{sources}"""
MAX_SOURCE_CHARS = 2000


@dataclass(frozen=True)
class Source:
    """A numbered passage given to the chat model, returned to the caller as a citation."""

    index: int
    knowledge_base_id: str
    document_id: str
    chunk_id: str
    filename: str
    page_start: int
    page_end: int
    text: str
    score: float


def retrieve_sources(zhiku: Zhiku, kbs: Sequence[KnowledgeBase], question: str, options: SearchOptions) -> list[Source]:
    """The best ``options.top_k`` passages across ``kbs`` (each searched alike, merged by fused score)."""
    found: list[tuple[KnowledgeBase, Hit]] = []
    for kb in kbs:
        found.extend((kb, hit) for hit in search(zhiku, kb, question, options))
    found.sort(key=lambda pair: pair[1].score, reverse=True)
    return [
        Source(
            i,
            kb.id,
            hit.document_id,
            hit.chunk_id,
            hit.filename,
            hit.page_start,
            hit.page_end,
            hit.text[:MAX_SOURCE_CHARS],
            hit.score,
        )
        for i, (kb, hit) in enumerate(found[: options.top_k], start=1)
    ]


def build_messages(messages: Sequence[dict[str, Any]], sources: Sequence[Source]) -> list[dict[str, Any]]:
    """The conversation with a system message carrying the numbered sources in front."""
    listing = (
        "\n\n".join(
            f"[{s.index}] {s.filename}, page {s.page_start}"
            + (f"-{s.page_end}" if s.page_end != s.page_start else "")
            + f":\n{s.text}"
            for s in sources
        )
        or "(no passages matched the question)"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT.format(sources=listing)}, *messages]
