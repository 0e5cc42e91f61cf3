"""Issue #17, item 9 (part): search options mean what the schema says. ``rerank`` is a JSON boolean, not 0/1 or
a string; ``min_score`` is a finite number: NaN (which silently disabled the threshold) and the infinities are
refused with a 400 naming the field, on a real `zhiku serve`."""

from __future__ import annotations

from collections.abc import Iterator

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
