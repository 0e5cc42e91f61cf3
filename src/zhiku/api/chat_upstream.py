"""The configured chat model (``chat_url``, an OpenAI-compatible server such as vLLM or Ollama), asked once or
streamed; its failures become :class:`~zhiku.errors.ChatUpstreamError` (502) with the server and the reason."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from zhiku.config import Settings
from zhiku.errors import ChatUpstreamError


def _target(settings: Settings) -> tuple[str, dict[str, str]]:
    assert settings.chat_url  # callers check it
    key = settings.chat_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    return settings.chat_url.rstrip("/") + "/chat/completions", headers


async def complete(settings: Settings, payload: dict[str, Any]) -> dict[str, Any]:
    """The chat server's completion of ``payload`` (not streamed)."""
    url, headers = _target(settings)
    try:
        async with httpx.AsyncClient(timeout=settings.chat_timeout) as client:
            response = await client.post(url, json={**payload, "stream": False}, headers=headers)
    except httpx.HTTPError as exc:
        raise ChatUpstreamError(f"chat server {settings.chat_url} failed: {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise ChatUpstreamError(
            f"chat server {settings.chat_url} answered HTTP {response.status_code}: {response.text[:300]}"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise ChatUpstreamError(f"chat server {settings.chat_url} answered with something other than JSON") from exc
    if not isinstance(body, dict):
        raise ChatUpstreamError(f"chat server {settings.chat_url} answered with JSON that is not a completion")
    return body


async def stream(settings: Settings, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The chat server's chunks of ``payload`` as they come (``[DONE]`` and non-JSON lines dropped)."""
    url, headers = _target(settings)
    try:
        async with (
            httpx.AsyncClient(timeout=settings.chat_timeout) as client,
            client.stream("POST", url, json={**payload, "stream": True}, headers=headers) as response,
        ):
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:300]
                raise ChatUpstreamError(
                    f"chat server {settings.chat_url} answered HTTP {response.status_code}: {detail}"
                )
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    continue
                if isinstance(chunk, dict):
                    yield chunk
    except httpx.HTTPError as exc:
        raise ChatUpstreamError(f"chat server {settings.chat_url} failed: {exc or type(exc).__name__}") from exc
