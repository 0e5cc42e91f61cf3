"""RAG chat against a STUB chat server.

No chat model can run on this machine, so the chat model is a stub: a tiny OpenAI-compatible server on
loopback that answers with the sources it was given (their count and first number). zhiku itself is real: its
server process, retrieval from a real knowledge base, the prompt with numbered sources, streaming relay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.servers import app_in_thread, zhiku_server

RECEIVED: list[dict[str, Any]] = []


def stub_chat_app() -> FastAPI:
    """The stub: answers "I read N sources [1]" and remembers what it was sent."""
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def complete(request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        RECEIVED.append(body)
        system = body["messages"][0]["content"]
        count = system.count("\n[")
        answer = f"I read {count} sources [1]"
        if not body.get("stream"):
            return JSONResponse({"id": "stub-1", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": answer}}]})  # fmt: skip

        async def chunks() -> Iterator[str]:  # type: ignore[misc]
            for word in answer.split(" "):
                delta = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word + " "}}]}
                yield f"data: {json.dumps(delta)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")  # type: ignore[arg-type]

    return app


@pytest.fixture(scope="module")
def stub_chat_url() -> Iterator[str]:
    with app_in_thread(stub_chat_app()) as url:
        yield f"{url}/v1"


def test_rag_chat_answers_with_numbered_sources(stub_chat_url: str, tmp_path: Path) -> None:
    settings = {"chat_url": stub_chat_url, "chat_model": "stub-model"}
    with zhiku_server(tmp_path, **settings) as (url, _), httpx.Client(base_url=url, timeout=120) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "百科"}).json()
        panda = "# 大熊猫\n\n大熊猫主要吃竹子，生活在四川的山林里。".encode()
        tea = b"# Tea\n\nGreen tea is not fermented; black tea is."
        files = [("files", ("panda.md", panda, "text/markdown")), ("files", ("tea.md", tea, "text/markdown"))]
        outcomes = client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents", files=files).json()
        for outcome in outcomes:
            with client.stream("GET", f"/api/v1/jobs/{outcome['job_id']}/events") as events:
                for line in events.iter_lines():
                    if line.startswith("event: end"):
                        break
        question = {"knowledge_base_id": kb["id"], "top_k": 2,
                    "messages": [{"role": "user", "content": "大熊猫吃什么？"}]}  # fmt: skip

        answer = client.post("/api/v1/chat/completions", json=question)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["choices"][0]["message"]["content"] == "I read 2 sources [1]"
        assert body["sources"][0]["index"] == 1
        assert body["sources"][0]["filename"] == "panda.md"
        assert body["sources"][0]["page_start"] == 1
        sent = RECEIVED[-1]
        assert sent["model"] == "stub-model"
        assert sent["messages"][0]["role"] == "system"
        assert "[1] panda.md, page 1" in sent["messages"][0]["content"]
        assert sent["messages"][-1] == {"role": "user", "content": "大熊猫吃什么？"}

        with client.stream("POST", "/api/v1/chat/completions", json={**question, "stream": True}) as stream:
            assert stream.status_code == 200
            data = [line[5:].strip() for line in stream.iter_lines() if line.startswith("data:")]
        first = json.loads(data[0])
        assert first["sources"][0]["filename"] == "panda.md"
        text = "".join(json.loads(d)["choices"][0]["delta"]["content"] for d in data[1:-1])
        assert text.strip() == "I read 2 sources [1]"
        assert data[-1] == "[DONE]"

        missing = client.post("/api/v1/chat/completions", json={**question, "knowledge_base_id": "nope"})
        assert missing.status_code == 404
