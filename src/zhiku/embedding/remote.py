"""Remote backend: any OpenAI-compatible ``/v1/embeddings`` server (vLLM, TEI, Infinity, Ollama, zhiku).

Requests are split to the server's batch limit and sent with bounded concurrency over one pooled httpx
client. 429, 5xx, timeouts and connection errors are retried with exponential backoff (honouring
``Retry-After``), moving to the next URL when several are configured. Every error names the URL.
Instructions, Matryoshka truncation and over-length handling happen here, in zhiku, exactly as for local
models, so results do not depend on which server is behind the URL.
"""

from __future__ import annotations

import base64
import itertools
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from zhiku.config import Settings
from zhiku.embedding.base import Embedder
from zhiku.embedding.models import ModelSpec
from zhiku.embedding.tokenization import load_tokenizer, special_token_count
from zhiku.errors import RemoteEmbeddingError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        return None


def _error_detail(response: httpx.Response) -> str:
    """The server's error message, from the OpenAI error shape or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            return str(error.get("message", error))[:300]
        return str(error)[:300]
    return str(body)[:300]


class RemoteEmbedder(Embedder):
    """Embeds through OpenAI-compatible HTTP servers."""

    def __init__(self, spec: ModelSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        self.urls = [url.rstrip("/") for url in settings.remote_urls]
        if not self.urls:
            raise ValueError("RemoteEmbedder needs at least one URL in remote_urls")
        self.remote_model = settings.remote_model or spec.source
        headers = {"User-Agent": "zhiku"}
        if settings.remote_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.remote_api_key.get_secret_value()}"
        limits = httpx.Limits(max_connections=settings.remote_max_concurrency * 2)
        self.client = httpx.Client(headers=headers, timeout=settings.remote_timeout, limits=limits)
        self.pool = ThreadPoolExecutor(max_workers=settings.remote_max_concurrency, thread_name_prefix="zhiku-remote")
        self._next_url = itertools.cycle(range(len(self.urls)))
        self._url_lock = threading.Lock()
        self._down_until: dict[str, float] = {}
        """URLs that failed recently, skipped until the time given (monotonic) or a passing health check."""
        self.tokenizer = load_tokenizer(spec, settings)
        self.special_tokens = special_token_count(self.tokenizer)

    def close(self) -> None:
        """Close the connection pool and worker threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def _encode(self, texts: list[str]) -> np.ndarray:
        size = self.settings.remote_max_batch
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        parts = list(self.pool.map(self._post_batch, batches))
        return np.concatenate(parts, axis=0)

    def _pick_url(self) -> str:
        """Round-robin over the servers, skipping those marked down (all down: try them anyway)."""
        now = time.monotonic()
        with self._url_lock:
            for _ in range(len(self.urls)):
                url = self.urls[next(self._next_url)]
                if self._down_until.get(url, 0.0) <= now:
                    return url
            return self.urls[next(self._next_url)]

    def _mark_down(self, url: str) -> None:
        with self._url_lock:
            self._down_until[url] = time.monotonic() + self.settings.remote_health_interval

    def upstream_status(self) -> dict[str, bool]:
        """Each server's URL and whether it is currently considered up."""
        now = time.monotonic()
        with self._url_lock:
            return {url: self._down_until.get(url, 0.0) <= now for url in self.urls}

    def check_health(self) -> dict[str, bool]:
        """Ask every server for ``/models``; mark failing ones down and passing ones up. Returns the status."""
        for url in self.urls:
            try:
                healthy = self.client.get(f"{url}/models", timeout=min(5.0, self.settings.remote_timeout)).is_success
            except httpx.HTTPError:
                healthy = False
            if healthy:
                with self._url_lock:
                    self._down_until.pop(url, None)
            else:
                self._mark_down(url)
        return self.upstream_status()

    def _post_batch(self, batch: list[str]) -> np.ndarray:
        payload = {"model": self.remote_model, "input": batch, "encoding_format": self.settings.remote_encoding_format}
        attempts = self.settings.remote_max_retries + 1
        url = self._pick_url()
        for attempt in range(attempts):
            delay = self.settings.remote_backoff * (2**attempt) * (0.5 + random.random())  # noqa: S311 - jitter
            try:
                response = self.client.post(f"{url}/embeddings", json=payload)
            except httpx.TimeoutException as exc:
                cause, status = f"timed out after {self.settings.remote_timeout:g} s ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                cause, status = f"connection failed: {exc or type(exc).__name__}", None
            else:
                if response.status_code == 200:
                    return self._parse(url, response, len(batch))
                status = response.status_code
                cause = f"HTTP {status}: {_error_detail(response)}"
                if status not in RETRY_STATUSES:
                    raise RemoteEmbeddingError(
                        f"embedding server {url} refused the request: {cause}", url=url, upstream_status=status
                    )
                delay = _retry_after(response) or delay
            if status is None or status >= 500:
                self._mark_down(url)
            if attempt + 1 == attempts:
                raise RemoteEmbeddingError(
                    f"embedding server {url} failed after {attempts} attempt(s): {cause}",
                    url=url,
                    upstream_status=status,
                )
            log.warning("embedding server %s: %s; retrying in %.2f s", url, cause, delay)
            time.sleep(delay)
            url = self._pick_url()
        raise AssertionError("unreachable")

    def _parse(self, url: str, response: httpx.Response, expected: int) -> np.ndarray:
        try:
            body: Any = response.json()
            items = sorted(body["data"], key=lambda item: item["index"])
            rows = [self._decode(item["embedding"]) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteEmbeddingError(
                f"embedding server {url} sent a malformed response: {exc!r}", url=url, upstream_status=200
            ) from exc
        if len(rows) != expected or len({len(r) for r in rows}) != 1:
            raise RemoteEmbeddingError(
                f"embedding server {url} returned {len(rows)} embeddings for {expected} inputs",
                url=url,
                upstream_status=200,
            )
        vectors = np.stack(rows)
        if vectors.shape[1] < self.spec.dimension:
            raise RemoteEmbeddingError(
                f"embedding server {url} returned {vectors.shape[1]} dims; model {self.spec.name} has "
                f"{self.spec.dimension} (is it serving another model?)",
                url=url,
                upstream_status=200,
            )
        return vectors

    @staticmethod
    def _decode(embedding: object) -> np.ndarray:
        if isinstance(embedding, str):
            return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
        if isinstance(embedding, list):
            return np.asarray(embedding, dtype=np.float32)
        raise TypeError(f"embedding of type {type(embedding).__name__}")
