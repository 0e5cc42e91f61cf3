"""What a search asks for, and its limits: defined once here for the library, CLI, HTTP API, chat and web UI.

``top_k`` is the number of hits: :data:`TOP_K` by default, at most :data:`MAX_TOP_K`, wherever a search is
asked for (``SearchOptions``, ``zhiku search --top-k``, ``POST /knowledge-bases/{kb}/search``, the web UI).
Chat puts its passages into a model's prompt, so it asks for fewer: :data:`CHAT_TOP_K` by default, at most
:data:`CHAT_MAX_TOP_K` (well inside the search maximum; each is a search of ``top_k`` hits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from zhiku.search.filters import DocumentFilter

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")
MAX_QUERY_CHARS = 4000

TOP_K = 10
"""Hits of a search unless the caller says otherwise."""
MAX_TOP_K = 100
"""The most hits one search returns."""
CHAT_TOP_K = 5
"""Passages a chat answer is grounded on unless the caller says otherwise."""
CHAT_MAX_TOP_K = 20
"""The most passages one chat answer is given (they all go into the prompt)."""


@dataclass(frozen=True)
class SearchOptions:
    """What to search for and how."""

    mode: Mode = "hybrid"
    top_k: int = TOP_K
    document_ids: Sequence[str] | None = None
    filter: DocumentFilter | None = None
    """Tags, metadata, dates, document names and types (see :mod:`zhiku.search.filters`)."""
    min_score: float | None = None
    neighbours: int = 0
    dimensions: int | None = None
    rerank: str | None = None
    """A reranker (``qwen3-reranker-0.6b``, a local folder, a CrossEncoder id) to reorder the best candidates."""
    rerank_candidates: int = 30
    hyde: bool = False
    """Search with the mean of the query's vector and that of a passage the chat model writes to answer it
    (:mod:`zhiku.search.hyde`; dense and hybrid modes; needs ``chat_url``)."""
    hypothetical_answer: str | None = None
    """With ``hyde``: the passage to use instead of asking the chat model (the API asks first, to show it)."""
