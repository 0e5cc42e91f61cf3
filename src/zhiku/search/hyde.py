"""HyDE (Gao et al., 2022, "Precise Zero-Shot Dense Retrieval without Relevance Labels"): ask the configured chat
model (``chat_url``) for a short passage that would answer the query, embed that passage as a document, and
search with the mean of its vector and the query's.

The passage may be wrong: what helps is that it is written like the documents (their vocabulary, their length, a
statement rather than a question). The query's own vector keeps it anchored. Answers are kept per process
(same chat server, model and query: same passage; the request asks for temperature 0), so a repeated search does
not ask again.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

import httpx
import numpy as np
from numpy.typing import NDArray

from zhiku.config import Settings
from zhiku.errors import ChatUpstreamError, InvalidInputError

PROMPT = (
    "Write one short passage (2 to 4 sentences) that answers the question below, as it could appear in a "
    "reference document. Write in the language of the question. Give only the passage: no preamble, no "
    "caveats, no question back. If you are not sure of the facts, write a plausible passage anyway."
)
MAX_ANSWER_CHARS = 2000
"""The most of the chat model's passage that is embedded (a few sentences were asked for)."""
MAX_TOKENS = 256
CACHE_SIZE = 512
_THINKING = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)

_cache: OrderedDict[tuple[str, str, str], str] = OrderedDict()
_cache_lock = threading.Lock()


def require_chat_model(settings: Settings) -> None:
    """Raise a 400 naming the setting when HyDE is asked for and no chat model is configured."""
    if not settings.chat_url:
        raise InvalidInputError(
            "hyde needs a chat model to write the hypothetical answer and this server has none: search with "
            "hyde=false, or set ZHIKU_CHAT_URL (an OpenAI-compatible server such as vLLM or Ollama) and "
            "ZHIKU_CHAT_MODEL",
            param="hyde",
        )


def hypothetical_answer(settings: Settings, query: str) -> str:
    """The chat model's passage answering ``query`` (cached per process); :class:`ChatUpstreamError` (502) when
    the chat server fails or answers with nothing usable."""
    require_chat_model(settings)
    assert settings.chat_url
    key = (settings.chat_url, settings.chat_model or "", query)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    answer = _ask(settings, query)
    with _cache_lock:
        _cache[key] = answer
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return answer


def _ask(settings: Settings, query: str) -> str:
    assert settings.chat_url
    url = settings.chat_url.rstrip("/") + "/chat/completions"
    key = settings.chat_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    payload = {
        "model": settings.chat_model or "default",
        "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": query}],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "stream": False,
    }
    where = f"chat server {settings.chat_url}"
    try:
        with httpx.Client(timeout=settings.chat_timeout) as client:
            response = client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise ChatUpstreamError(f"{where} failed writing the HyDE passage: {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ChatUpstreamError(f"{where} answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ChatUpstreamError(f"{where} answered with something other than a chat completion") from None
    if not isinstance(content, str):
        raise ChatUpstreamError(f"{where} answered with a completion without text")
    answer = " ".join(_THINKING.sub("", content).split())[:MAX_ANSWER_CHARS]  # a reasoning model's <think> dropped
    if not answer:
        raise ChatUpstreamError(f"{where} answered with an empty passage")
    return answer


def fuse_vectors(query: NDArray[np.float32], passage: NDArray[np.float32]) -> NDArray[np.float32]:
    """The unit-length mean of the query's and the hypothetical passage's unit vectors."""
    mean = query / np.linalg.norm(query) + passage / np.linalg.norm(passage)
    fused: NDArray[np.float32] = (mean / np.linalg.norm(mean)).astype(np.float32)
    return fused
