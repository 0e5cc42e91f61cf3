"""Issue #17, item 9: search options mean what the schema says; wrong methods, content types and multipart part
headers get errors that say what to do. Search options: ``rerank`` is a JSON boolean, not 0/1 or
a string; ``min_score`` is a finite number: NaN (which silently disabled the threshold) and the infinities are
refused with a 400 naming the field, on a real `zhiku serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import zhiku_server

ADMIN = "spec-admin-key-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def search_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    workdir = tmp_path_factory.mktemp("spec")
    server = zhiku_server(workdir, auth="on", admin_api_key=ADMIN, rate_limit_read="100000/minute")
    with server as (url, _), httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        kb = client.post("/api/v1/knowledge-bases", json={"name": "spec"}).json()["id"]
        yield client, f"/api/v1/knowledge-bases/{kb}/search"


def post_raw(client: httpx.Client, url: str, body: str) -> httpx.Response:
    return client.post(url, content=body.encode(), headers={"Content-Type": "application/json"}, timeout=60)


def test_rerank_must_be_a_boolean(search_url: tuple[httpx.Client, str]) -> None:
    client, url = search_url
    for value in ("0", "1", "0.0", '"true"', '"false"', '"yes"', '""', "[]", "{}", '"0"'):
        response = post_raw(client, url, f'{{"query": "x", "rerank": {value}}}')
        assert response.status_code == 400, (value, response.text)
        error = response.json()["error"]
        assert error["param"] == "rerank", error
        assert "boolean" in error["message"], error
    assert post_raw(client, url, '{"query": "x", "rerank": false}').status_code == 200


def test_min_score_must_be_finite(search_url: tuple[httpx.Client, str]) -> None:
    client, url = search_url
    for value in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400"):
        response = post_raw(client, url, f'{{"query": "x", "min_score": {value}}}')
        assert response.status_code == 400, (value, response.text)
        error = response.json()["error"]
        assert error["param"] == "min_score", error
        assert "finite" in error["message"], error
    for value in ("0", "0.5", "-1", "1e-9", "null"):
        assert post_raw(client, url, f'{{"query": "x", "min_score": {value}}}').status_code == 200, value


# Issue #17, item 9: the wrong method, the wrong content type, a part header over the multipart parser's limit.

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _paths(client: httpx.Client) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
    return paths


def test_a_wrong_method_is_405_with_every_allowed_method(search_url: tuple[httpx.Client, str]) -> None:
    client, _ = search_url
    checked = 0
    for template, operations in _paths(client).items():
        if "/events" in template:
            continue
        path = re.sub(r"\{[^}]+\}", "x", template)
        documented = {method.upper() for method in operations}
        for method in sorted(set(METHODS) - documented):
            response = client.request(method, path)
            assert response.status_code == 405, (method, template, response.text)
            assert set(response.headers["allow"].split(", ")) == documented, (method, template, response.headers)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error", error
            assert error["code"] == "method_not_allowed", error
            assert method in error["message"], error
            checked += 1
    assert checked >= 50


def test_json_routes_name_the_content_type_they_need(search_url: tuple[httpx.Client, str]) -> None:
    client, _ = search_url
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", template))
        for template, operations in _paths(client).items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(routes) >= 8, routes  # every JSON body: embeddings, chat, keys, knowledge bases, documents
    for method, path in routes:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml", None):
            headers = {"Content-Type": content_type} if content_type else {}
            response = client.request(method, path, content=b'{"name": "x"}', headers=headers)
            assert response.status_code == 415, (method, path, content_type, response.text)
            error = response.json()["error"]
            assert "send Content-Type: application/json" in error["message"], error
            assert (repr(content_type) if content_type else "no Content-Type") in error["message"], error
            assert error["type"] == "invalid_request_error", error


def test_a_file_name_over_the_part_header_limit_is_named(search_url: tuple[httpx.Client, str]) -> None:
    client, url = search_url
    upload = url.replace("/search", "/documents")
    for length in (5_000, 10_000, 100_000):
        files = [("files", ("n" * length + ".txt", b"hello world", "text/plain"))]
        response = client.post(upload, files=files, timeout=60)
        assert response.status_code == 400, (length, response.text)
        error = response.json()["error"]
        assert error["param"] == "files", error
        assert "4,224 bytes" in error["message"], error
        assert "file name" in error["message"], error
    response = client.post(upload, files=[("files", ("n" * 3_000 + ".txt", b"hello world", "text/plain"))], timeout=60)
    assert response.status_code == 201, response.text
    assert len(response.json()[0]["filename"].encode()) <= 255
