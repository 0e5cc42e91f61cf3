"""HyDE against a STUB chat server.

No chat model can run on this machine, so the chat model is a stub: a tiny OpenAI-compatible server on loopback
that answers each question with the passage the test gave it (or fails as the test asks). Everything else is
real: the default multilingual model, SQLite, Qdrant Edge, zhiku's HTTP server, XQuAD paragraphs.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tests.knowledge.helpers import run_queued_jobs, xquad_rows
from tests.servers import app_in_thread, chromium, zhiku_server
from tests.test_cli_remote import one_line_error, run
from tests.web.test_ui import DESKTOP, Console, shoot
from zhiku.config import Settings
from zhiku.core import Zhiku
from zhiku.errors import ChatUpstreamError, InvalidInputError
from zhiku.knowledge.bases import create_knowledge_base
from zhiku.knowledge.documents import register_file
from zhiku.search import hyde
from zhiku.search.options import SearchOptions
from zhiku.search.retrieve import search

ARTICLES = 12
"""The paragraphs of this many XQuAD articles (about 5 each) make the knowledge base."""


class StubChat:
    """The STUB chat model: ``passages[question]`` is its answer; ``failure`` makes it fail ("500", "garbage",
    "empty"); every request it gets is kept in ``received``."""

    def __init__(self) -> None:
        self.passages: dict[str, str] = {}
        self.failure: str | None = None
        self.received: list[dict[str, Any]] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Response:
            body = await request.json()
            self.received.append(body)
            if self.failure == "500":
                return PlainTextResponse("model not loaded", status_code=500)
            if self.failure == "garbage":
                return JSONResponse({"choices": []})
            question = body["messages"][-1]["content"]
            content = "" if self.failure == "empty" else self.passages.get(question, "no idea")
            message = {"role": "assistant", "content": content}
            return JSONResponse({"object": "chat.completion", "choices": [{"index": 0, "message": message}]})

        return app


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[StubChat, str]]:
    chat = StubChat()
    with app_in_thread(chat.app()) as url:
        yield chat, f"{url}/v1"


def _corpus(evaldata: Path) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str]]]:
    """English and Chinese paragraphs by id, and the English questions on them with their paragraph's id."""
    wanted = {row["_id"] for row in xquad_rows(evaldata, "en") if int(row["_id"][3:5]) < ARTICLES}
    english = {row["_id"]: row["text"] for row in xquad_rows(evaldata, "en") if row["_id"] in wanted}
    chinese = {row["_id"]: row["text"] for row in xquad_rows(evaldata, "zh") if row["_id"] in wanted}
    folder = evaldata / "retrieval" / "xquad-en"
    with (folder / "qrels.tsv").open(encoding="utf-8") as rows:
        answer_of = {row["query-id"]: row["corpus-id"] for row in csv.DictReader(rows, delimiter="\t")}
    with (folder / "queries.jsonl").open(encoding="utf-8") as lines:
        queries = [json.loads(line) for line in lines]
    questions = [(q["text"], answer_of[q["_id"]]) for q in queries if answer_of.get(q["_id"]) in wanted]
    return english, chinese, questions


def test_hyde_finds_what_the_passage_describes_and_a_wrong_passage_misleads_it(
    evaldata: Path, tmp_path: Path, stub: tuple[StubChat, str]
) -> None:
    """The passage takes part in the search: the Chinese translation of the right paragraph (a chat model that
    knows the answer, in another language) puts that paragraph first for questions the query alone missed; a
    paragraph of another article (a chat model that makes things up) pulls the search away."""
    chat, url = stub
    english, chinese, questions = _corpus(evaldata)
    zhiku = Zhiku(Settings(home=tmp_path / "home", chat_url=url, chat_model="stub-model"))
    try:
        kb = create_knowledge_base(zhiku, "xquad")
        ids: dict[str, str] = {}
        for paragraph_id, text in english.items():
            path = tmp_path / f"{paragraph_id}.txt"
            path.write_text(text, encoding="utf-8")
            registration = register_file(zhiku, kb, path)
            assert registration.document_id is not None
            ids[registration.document_id] = paragraph_id
        run_queued_jobs(zhiku)

        def first(question: str, **options: Any) -> str:
            hits = search(zhiku, kb, question, SearchOptions(mode="dense", top_k=3, **options))
            return ids[hits[0].document_id]

        missed = [(q, answer) for q, answer in questions if first(q) != answer]
        assert len(missed) >= 10, "the query alone finds nearly everything: nothing left for HyDE to show"
        for question, answer in missed:
            chat.passages[question] = chinese[answer]
        chat.received.clear()
        fixed = sum(first(q, hyde=True) == answer for q, answer in missed)
        assert fixed >= 0.6 * len(missed), (fixed, len(missed))
        assert len(chat.received) == len(missed)  # asked once per question...
        sent = chat.received[0]
        assert sent["model"] == "stub-model"
        assert sent["temperature"] == 0
        assert sent["messages"][0]["role"] == "system"
        assert sent["messages"][-1]["role"] == "user"
        assert first(missed[0][0], hyde=True) == missed[0][1]
        assert len(chat.received) == len(missed)  # ...and the passage kept for a repeated search

        found = [(q, answer) for q, answer in questions if (q, answer) not in missed][:40]
        wrong = {answer: chinese[f"xq-{(int(answer[3:5]) + 5) % ARTICLES:02d}-00"] for _, answer in found}
        misled = sum(
            first(q, hyde=True, hypothetical_answer=wrong[answer]) != answer for q, answer in found
        )  # the passage given directly: no chat server asked
        assert misled >= 0.2 * len(found), (misled, len(found))
    finally:
        zhiku.close()


def test_hyde_options_are_checked(tmp_path: Path) -> None:
    zhiku = Zhiku(Settings(home=tmp_path / "home"))
    try:
        kb = create_knowledge_base(zhiku, "kb")
        with pytest.raises(InvalidInputError, match="ZHIKU_CHAT_URL") as no_chat:
            search(zhiku, kb, "what", SearchOptions(hyde=True))
        assert no_chat.value.param == "hyde"
        with pytest.raises(InvalidInputError, match="lexical") as lexical:
            search(zhiku, kb, "what", SearchOptions(mode="lexical", hyde=True, hypothetical_answer="a passage"))
        assert lexical.value.param == "hyde"
        for passage in (" \n", "x" * 5000):
            with pytest.raises(InvalidInputError) as bad:
                search(zhiku, kb, "what", SearchOptions(hyde=True, hypothetical_answer=passage))
            assert bad.value.param == "hypothetical_answer"
    finally:
        zhiku.close()


def test_a_failing_chat_server_is_a_502_naming_it(stub: tuple[StubChat, str]) -> None:
    chat, url = stub
    settings = Settings(chat_url=url, chat_model="stub-model")
    chat.passages["q-think"] = "<think>the user wants a passage\nabout tea</think>\n\nGreen tea   is not fermented."
    assert hyde.hypothetical_answer(settings, "q-think") == "Green tea is not fermented."  # the reasoning dropped
    for failure, message in (("500", "HTTP 500: model not loaded"), ("garbage", "other than a chat completion"),
                             ("empty", "empty passage")):  # fmt: skip
        chat.failure = failure
        try:
            with pytest.raises(ChatUpstreamError, match=message) as failed:
                hyde.hypothetical_answer(settings, f"q-{failure}")
            assert url in failed.value.message
        finally:
            chat.failure = None
    unreachable = Settings(chat_url="http://127.0.0.1:9/v1", chat_timeout=5)
    with pytest.raises(ChatUpstreamError, match="failed writing the HyDE passage"):
        hyde.hypothetical_answer(unreachable, "anything")


def test_the_api_shows_the_passage_and_refuses_hyde_it_cannot_do(tmp_path: Path, stub: tuple[StubChat, str]) -> None:
    chat, url = stub
    chat.passages["大熊猫吃什么？"] = "大熊猫几乎只吃竹子，每天要吃十几公斤。"
    with (
        zhiku_server(tmp_path / "chat", chat_url=url, chat_model="stub-model") as (base, _),
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        kb = client.post("/api/v1/knowledge-bases", json={"name": "百科"}).json()
        panda = "# 大熊猫\n\n大熊猫主要吃竹子，生活在四川的山林里。".encode()
        files = [("files", ("panda.md", panda, "text/markdown")),
                 ("files", ("tea.md", b"# Tea\n\nGreen tea is not fermented.", "text/markdown"))]  # fmt: skip
        for outcome in client.post(f"/api/v1/knowledge-bases/{kb['id']}/documents", files=files).json():
            with client.stream("GET", f"/api/v1/jobs/{outcome['job_id']}/events") as events:
                for line in events.iter_lines():
                    if line.startswith("event: end"):
                        break
        searched = client.post(
            f"/api/v1/knowledge-bases/{kb['id']}/search", json={"query": "大熊猫吃什么？", "hyde": True}
        )
        assert searched.status_code == 200, searched.text
        assert searched.json()["hypothetical_answer"] == "大熊猫几乎只吃竹子，每天要吃十几公斤。"
        assert searched.json()["hits"][0]["filename"] == "panda.md"
        plain = client.post(f"/api/v1/knowledge-bases/{kb['id']}/search", json={"query": "大熊猫吃什么？"}).json()
        assert plain["hypothetical_answer"] is None

        for body, param in (({"mode": "lexical", "hyde": True}, "hyde"), ({"hyde": "yes"}, "hyde"),
                            ({"hyde": 1}, "hyde")):  # fmt: skip
            refused = client.post(f"/api/v1/knowledge-bases/{kb['id']}/search", json={"query": "竹子", **body})
            assert refused.status_code == 400, (body, refused.text)
            assert refused.json()["error"]["param"] == param
        chat.failure = "500"
        try:
            failed = client.post(f"/api/v1/knowledge-bases/{kb['id']}/search", json={"query": "新问题", "hyde": True})
        finally:
            chat.failure = None
        assert failed.status_code == 502
        assert url in failed.json()["error"]["message"]
        assert client.get("/readyz").status_code == 200
        _search_in_the_ui(base, kb["id"], hyde_offered=True)
        cli = run(
            tmp_path / "chat" / "home", "search", "大熊猫吃什么？", "--kb", "百科", "--hyde"
        )  # through the server
        assert cli.returncode == 0, cli.stderr
        assert "HyDE also searched for the chat model's passage: 大熊猫几乎只吃竹子" in cli.stdout
        assert "panda.md" in cli.stdout

    with zhiku_server(tmp_path / "plain") as (base, _), httpx.Client(base_url=base, timeout=120) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "kb"}).json()
        refused = client.post(f"/api/v1/knowledge-bases/{kb['id']}/search", json={"query": "竹子", "hyde": True})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "hyde"
        assert "ZHIKU_CHAT_URL" in refused.json()["error"]["message"]
        _search_in_the_ui(base, kb["id"], hyde_offered=False)
        cli = run(tmp_path / "plain" / "home", "search", "竹子", "--kb", "kb", "--hyde")
        assert "ZHIKU_CHAT_URL" in one_line_error(cli)

    # the server stopped: the CLI opens the knowledge base itself and asks the chat model itself
    embedded = run(tmp_path / "chat" / "home", "search", "大熊猫吃什么？", "--kb", "百科", "--hyde", ZHIKU_CHAT_URL=url)
    assert embedded.returncode == 0, embedded.stderr
    assert "HyDE also searched for the chat model's passage: 大熊猫几乎只吃竹子" in embedded.stdout


def _search_in_the_ui(base: str, kb_id: str, *, hyde_offered: bool) -> None:
    """The web UI's search form in Chromium: its HyDE box is offered only with a chat model, and a HyDE search
    shows the chat model's passage above the hits."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport=DESKTOP, locale="en-US")
        page.set_default_timeout(60_000)
        console = Console(page)
        page.goto(f"{base}/#/search?kb={kb_id}")
        box = page.get_by_role("checkbox", name="HyDE")
        if not hyde_offered:
            expect(box).to_be_disabled()
            expect(page.locator("label.check", has=box)).to_have_attribute("title", re.compile("ZHIKU_CHAT_URL"))
            return
        expect(box).to_be_enabled()
        page.get_by_label("Question or keywords").fill("大熊猫吃什么？")
        box.check()
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#hyde-passage")).to_contain_text("大熊猫几乎只吃竹子")
        expect(page.locator("#results .hit").first).to_contain_text("panda.md")
        shoot(page, "search-hyde")
        assert console.problems == []
