"""Retrieval-augmented answers: retrieve from knowledge bases, number the sources, ask an OpenAI-compatible
chat model to answer citing them as [1], [2], ..."""

from __future__ import annotations

import re
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
    ocr_confidence: float | None = None
    """Set when the passage was read by OCR from a scan (its confidence, 0-1)."""


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
            (f"{hit.context}\n{hit.text}" if hit.context else hit.text)[:MAX_SOURCE_CHARS],  # a table's header
            hit.score,
            hit.ocr_confidence,
        )
        for i, (kb, hit) in enumerate(found[: options.top_k], start=1)
    ]


def build_messages(messages: Sequence[dict[str, Any]], sources: Sequence[Source]) -> list[dict[str, Any]]:
    """The conversation with a system message carrying the numbered sources in front."""
    listing = "\n\n".join(f"{cite(s)}:\n{s.text}" for s in sources) or "(no passages matched the question)"
    return [{"role": "system", "content": SYSTEM_PROMPT.format(sources=listing)}, *messages]


def cite(source: Source) -> str:
    """How a source is named to a reader: ``[1] handbook.pdf, page 3`` (``pages 3-4`` across pages), and
    ``(OCR, confidence 0.93)`` after a passage read from a scan."""
    pages = (
        f"page {source.page_start}"
        if source.page_end == source.page_start
        else f"pages {source.page_start}-{source.page_end}"
    )
    ocr = "" if source.ocr_confidence is None else f" (OCR, confidence {source.ocr_confidence:.2f})"
    return f"[{source.index}] {source.filename}, {pages}{ocr}"


def sources_footer(sources: Sequence[Source]) -> str:
    """The sources as Markdown after an answer, for chat clients that show only the message text."""
    if not sources:
        return ""
    return "\n\n---\n**Sources**\n\n" + "\n".join(f"- {cite(s)}" for s in sources)


PASSAGE_PREVIEW_CHARS = 600
PASSAGE_MIN_RELEVANCE = 0.1
"""Passages below this relevance (0-1, see :mod:`zhiku.search.relevance`) are left out of the passages reply:
they are the closest the knowledge base has, not matches."""
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def passages_answer(question: str, sources: Sequence[Source]) -> str:
    """The reply when no chat model is configured: the best passages with their citations, labelled as such (in
    Chinese for a question with CJK characters), so a chat client still shows where the answer is. Passages under
    :data:`PASSAGE_MIN_RELEVANCE` are left out."""
    chinese = bool(_CJK.search(question))
    if chinese:
        label = "**未配置对话模型，以下不是生成的回答，而是与问题最相关的原文段落：**"
        empty = "（知识库中没有与问题匹配的段落。）"
        hint = "\n\n_管理员可设置 ZHIKU_CHAT_URL 与 ZHIKU_CHAT_MODEL 以启用生成式回答。_"
    else:
        label = (
            "**No chat model is configured, so this is not a written answer: these are the passages that best "
            "match the question.**"
        )
        empty = "(No passage in the knowledge base matches the question.)"
        hint = "\n\n_An administrator can set ZHIKU_CHAT_URL and ZHIKU_CHAT_MODEL to get written answers._"
    shown = [source for source in sources if source.score >= PASSAGE_MIN_RELEVANCE]
    if not shown:
        return f"{label}\n\n{empty}{hint}"
    blocks = []
    for source in shown:
        text = " ".join(source.text.split())
        if len(text) > PASSAGE_PREVIEW_CHARS:
            text = text[:PASSAGE_PREVIEW_CHARS].rstrip() + " …"
        blocks.append(f"**{cite(source)}**\n\n> {text}")
    return label + "\n\n" + "\n\n".join(blocks) + hint
