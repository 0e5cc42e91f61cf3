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


def _ingest(client: httpx.Client, name: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """A knowledge base with ``files`` (Markdown), waited for until every document is indexed."""
    kb: dict[str, Any] = client.post("/api/v1/knowledge-bases", json={"name": name}).json()
    parts = [("files", (filename, data, "text/markdown")) for filename, data in files]
    for outcome in client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents", files=parts).json():
        with client.stream("GET", f"/api/v1/jobs/{outcome['job_id']}/events") as events:
            for line in events.iter_lines():
                if line.startswith("event: end"):
                    break
    return kb


PANDA = ("panda.md", "# 大熊猫\n\n大熊猫主要吃竹子，生活在四川的山林里。".encode())
TEA = ("tea.md", b"# Tea\n\nGreen tea is not fermented; black tea is fully oxidised.")
BIKES = ("bikes.md", b"# Bicycles\n\nA derailleur moves the chain between sprockets to change gears.")


@pytest.fixture(scope="module")
def openai_server(stub_chat_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """zhiku with the STUB chat model and two knowledge bases: 百科 (panda, tea) and bikes."""
    workdir = tmp_path_factory.mktemp("chat")
    with zhiku_server(workdir, chat_url=stub_chat_url, chat_model="stub-model") as (url, _):
        with httpx.Client(base_url=url, timeout=120) as client:
            _ingest(client, "百科", [PANDA, TEA])
            _ingest(client, "bikes", [BIKES])
        yield url


def test_openai_chat_clients_choose_knowledge_bases_by_model(openai_server: str) -> None:
    """The `openai` SDK as Open WebUI, Chatbox or LobeChat use it: list the models, chat with `kb:<name>`, get
    an answer whose text ends with its sources, plus the sources as data."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{openai_server}/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list().data]
    assert {"kb:百科", "kb:bikes", "kb:*", "use-multilingual-v3"} <= set(ids)
    assert client.models.retrieve("kb:百科").id == "kb:百科"

    answer = client.chat.completions.create(
        model="kb:百科", messages=[{"role": "user", "content": "大熊猫吃什么？"}], extra_body={"top_k": 2}
    )
    assert answer.model == "kb:百科"
    text = answer.choices[0].message.content or ""
    assert text.startswith("I read 2 sources [1]")
    assert "**Sources**" in text
    assert "- [1] panda.md, page 1" in text
    sources = (answer.model_extra or {})["sources"]
    assert sources[0]["filename"] == "panda.md"
    assert RECEIVED[-1]["model"] == "stub-model"  # the configured chat model is asked, not "kb:百科"

    # content parts and the developer role, as newer clients send them
    parts = client.chat.completions.create(
        model="kb:bikes",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "How do gears change?"}]},
        ],
    )
    assert "[1] bikes.md, page 1" in (parts.choices[0].message.content or "")
    assert RECEIVED[-1]["messages"][1] == {"role": "system", "content": "Be brief."}

    # several knowledge bases at once, and all of them
    both = client.chat.completions.create(
        model="kb:百科+bikes", messages=[{"role": "user", "content": "derailleur gears"}], extra_body={"top_k": 3}
    )
    assert "bikes.md" in {s["filename"] for s in (both.model_extra or {})["sources"]}
    everything = client.chat.completions.create(model="kb:*", messages=[{"role": "user", "content": "tea"}])
    assert (everything.model_extra or {})["sources"]


def test_openai_chat_streams_with_sources_first_and_last(openai_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{openai_server}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="kb:百科", messages=[{"role": "user", "content": "大熊猫吃什么？"}], stream=True, extra_body={"top_k": 2}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (chunks[0].model_extra or {})["sources"][0]["filename"] == "panda.md"
    assert {c.model for c in chunks} == {"kb:百科"}
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("I read 2 sources [1]")
    assert text.rstrip().endswith("- [2] tea.md, page 1")


def test_openai_clients_given_the_rest_api_base_url_work_too(openai_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{openai_server}/api/v1", api_key="unused", max_retries=0)
    assert "kb:bikes" in [m.id for m in client.models.list().data]
    answer = client.chat.completions.create(model="kb:bikes", messages=[{"role": "user", "content": "gears?"}])
    assert answer.model == "kb:bikes"
    assert "[1] bikes.md, page 1" in (answer.choices[0].message.content or "")


@pytest.mark.parametrize(
    ("model", "messages", "status", "param", "message"),
    [
        ("kb:nope", None, 404, "model", "no knowledge base named 'nope'"),
        ("use-multilingual-v3", None, 404, "model", "is not a chat model here"),
        ("gpt-4o", None, 404, "model", "'kb:<knowledge base>'"),
        ("kb:", None, 404, "model", "names an empty knowledge base"),
        ("kb:bikes++", None, 404, "model", "names an empty knowledge base"),
        ("kb:" + "+".join(["bikes"] * 21), None, 404, "model", "at most 20"),
        ("kb:" + "x" * 600, None, 400, "model", "at most 500"),
        ("kb:bikes", [{"role": "user", "content": [{"type": "image_url"}]}], 400, "messages.0.content", "text parts"),
        ("kb:bikes", [{"role": "user", "content": [{"text": "x"}]}], 400, "messages.0.content", "part 0 is no type"),
        ("kb:bikes", [{"role": "user", "content": 5}], 400, "messages.0.content", "a string or a list of text"),
        ("kb:bikes", [{"role": "tool", "content": "x"}], 400, "messages.0.role", ""),
        ("kb:bikes", [{"role": "user", "content": "   "}], 400, "messages", "no user message with text"),
        ("kb:bikes", [{"role": "assistant", "content": "hi"}], 400, "messages", "no user message with text"),
        ("kb:bikes", [], 400, "messages", ""),
    ],
)
def test_openai_chat_refuses_precisely(
    openai_server: str, model: str, messages: list[dict[str, Any]] | None, status: int, param: str, message: str
) -> None:
    body = {"model": model, "messages": messages if messages is not None else [{"role": "user", "content": "gears"}]}
    response = httpx.post(f"{openai_server}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert message in error["message"]
    assert response.headers["x-should-retry"] == "false"


def test_without_a_chat_model_the_reply_is_the_labelled_passages(tmp_path: Path) -> None:
    """No chat model configured: not an error but the best passages with citations, labelled as such (in the
    question's language), on both routes, streamed or not."""
    from openai import OpenAI

    with zhiku_server(tmp_path) as (url, _):
        with httpx.Client(base_url=url, timeout=120) as http:
            kb = _ingest(http, "百科", [PANDA, TEA])
            question = [{"role": "user", "content": "大熊猫吃什么？"}]
            ours = http.post("/api/v1/chat/completions", json={"knowledge_base_id": kb["id"], "messages": question})
        assert ours.status_code == 200, ours.text
        assert ours.json()["retrieval_only"] is True
        assert ours.json()["sources"][0]["filename"] == "panda.md"
        assert "未配置对话模型" in ours.json()["choices"][0]["message"]["content"]

        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="kb:百科", messages=[{"role": "user", "content": "Which tea is fermented?"}]
        )
        text = answer.choices[0].message.content or ""
        assert text.startswith("**No chat model is configured, so this is not a written answer")
        assert "**[1] tea.md, page 1**" in text
        assert "> # Tea Green tea is not fermented" in text or "> Green tea is not fermented" in text
        assert (answer.model_extra or {})["retrieval_only"] is True
        streamed = client.chat.completions.create(
            model="kb:百科", messages=[{"role": "user", "content": "Which tea is fermented?"}], stream=True
        )
        chunks = list(streamed)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert chunks[-1].choices[0].finish_reason == "stop"
