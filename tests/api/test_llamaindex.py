"""LlamaIndex, the real client, against a real `zhiku serve`: `OpenAILikeEmbedding` for the embedding server and
`OpenAILike` for RAG chat with a knowledge base chosen by model (``kb:<name>``), configured exactly as a user
types it (docs/clients.md); and LangChain's `ChatOpenAI` with the same model, on the same server.

No chat model can run on this machine, so the chat model is a STUB (as in test_chat.py): a tiny OpenAI-compatible
server on loopback that answers "I read N sources [1]". zhiku itself is real: its server process, retrieval from
a real knowledge base, the Sources list it appends, the streaming relay.

Offline: LlamaIndex fetches nothing here. Its NLTK data ships inside llama-index-core (``_static/nltk_cache``) and
is only read by its text splitters; tiktoken is only loaded when it counts tokens (memory buffers, prompt
helpers), which neither ``.chat`` nor the embeddings do.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.api.test_chat import PANDA, RECEIVED, TEA, _ingest, stub_chat_app
from tests.servers import app_in_thread, zhiku_server

pytest.importorskip("llama_index.embeddings.openai_like", reason="pip install -e '.[dev]' installs LlamaIndex")

DEFAULT = "use-multilingual-v3"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """zhiku with the default embedding model, the STUB chat model and a knowledge base 百科 (panda, tea)."""
    workdir = tmp_path_factory.mktemp("llamaindex")
    with (
        app_in_thread(stub_chat_app()) as stub,
        zhiku_server(workdir, chat_url=f"{stub}/v1", chat_model="stub-model") as (url, _),
    ):
        with httpx.Client(base_url=url, timeout=120) as client:
            _ingest(client, "百科", [PANDA, TEA])
        yield url


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_llamaindex_embeddings_are_zhikus_vectors(server: str) -> None:
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    embed_model = OpenAILikeEmbedding(model_name="use-multilingual-v3", api_base=f"{server}/v1", api_key="unused")
    texts = ["大熊猫生活在四川的竹林里。", "Pandas live in bamboo forests in Sichuan.", "Green tea is not fermented."]
    batch = embed_model.get_text_embedding_batch(texts)
    query = embed_model.get_query_embedding("What do pandas eat?")

    direct = httpx.post(f"{server}/v1/embeddings", json={"model": DEFAULT, "input": [*texts, "What do pandas eat?"]})
    reference = [np.asarray(item["embedding"]) for item in direct.json()["data"]]
    assert len(batch) == 3
    for got, want in zip([*batch, query], reference, strict=True):
        assert len(got) == 512
        assert cosine(np.asarray(got), want) > 0.9999
    assert cosine(np.asarray(batch[0]), np.asarray(batch[1])) > cosine(np.asarray(batch[0]), np.asarray(batch[2]))


def test_llamaindex_chat_with_a_knowledge_base(server: str) -> None:
    """`.chat` returns the (stub) chat model's answer followed by zhiku's Sources list; `.stream_chat` streams the
    same text."""
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="kb:百科", api_base=f"{server}/v1", api_key="unused", is_chat_model=True)
    question = [ChatMessage(role="user", content="大熊猫吃什么？")]

    answer = llm.chat(question)
    text = answer.message.content or ""
    assert text.startswith("I read 2 sources [1]")
    assert "\n\n---\n**Sources**\n\n" in text
    assert "- [1] panda.md, page 1" in text
    assert "tea.md" in text
    assert RECEIVED[-1]["model"] == "stub-model"  # the configured chat model is asked, not "kb:百科"
    assert RECEIVED[-1]["messages"][-1] == {"role": "user", "content": "大熊猫吃什么？"}

    chunks = list(llm.stream_chat(question))
    assert len(chunks) > 2
    streamed = "".join(chunk.delta or "" for chunk in chunks)
    assert streamed == chunks[-1].message.content
    # the stub streams its words with a trailing space each; the rest is the same text
    assert streamed.replace("[1] \n", "[1]\n") == text


def test_langchain_chat_openai_with_a_knowledge_base(server: str) -> None:
    """LangChain's `ChatOpenAI` as docs/clients.md configures it (same server, same stub chat model)."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="kb:百科", base_url=f"{server}/v1", api_key="unused", max_retries=0)
    answer = llm.invoke("大熊猫吃什么？")
    text = str(answer.content)
    assert text.startswith("I read 2 sources [1]")
    assert "- [1] panda.md, page 1" in text
    streamed = "".join(str(chunk.content) for chunk in llm.stream("大熊猫吃什么？"))
    assert streamed.replace("[1] \n", "[1]\n") == text
