"""The MCP server through the official SDK's own client: `zhiku mcp` over stdio (embedded, and through a running
server with its key's tenant) and streamable HTTP at /mcp of a real `zhiku serve` with auth on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from tests.security.bombs import pdf
from tests.servers import zhiku_server

ZHIKU = str(Path(sys.executable).parent / "zhiku")
ADMIN = "test-admin-key-mcp-0123456789abcdef0123456789"
PAGES = [
    "Welcome to the Harbour handbook. It explains how the harbour office works, who answers the telephone, "
    "where the visitors wait and which forms the captains fill in when they arrive.",
    "The lighthouse keeper polishes the brass lamp every evening before sunset. He climbs the spiral stairs, "
    "trims the wick, checks the lens for salt and writes the weather into the logbook.",
    "Invoices from ship chandlers are paid within thirty days of delivery. The accountant checks every invoice "
    "against the delivery note and the order before the bank transfer is approved.",
]


SMALL_CHUNKS = ("--chunk-tokens", "32", "--overlap", "0")
"""Chunks shorter than a page of the PDF: no chunk spans two pages."""


def _page_stream(text: str) -> bytes:
    return f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()


def make_docs(folder: Path) -> Path:
    """A three-page PDF and a Markdown note."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harbour.pdf").write_bytes(pdf([_page_stream(text) for text in PAGES]))
    (folder / "notes.md").write_text("# Notes\n\nThe ferry to the island leaves at nine.\n", "utf-8")
    return folder


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `zhiku` process on ``home`` (the SDK's stdio client passes only a few variables of
    its own process, so everything zhiku needs is named here)."""
    env = {"ZHIKU_HOME": str(home), "ZHIKU_EMBEDDING_BACKEND": "torch", "HF_HUB_OFFLINE": "1"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env | extra


def _zhiku(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIKU_")} | _env(home)
    done = subprocess.run([ZHIKU, *args], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def stdio(home: Path, **extra: str) -> Client:
    """The SDK's client of `zhiku mcp` on ``home``."""
    return Client(StdioServerParameters(command=ZHIKU, args=["mcp"], env=_env(home, **extra)))


def http(url: str, key: str | None) -> Client:
    """The SDK's client of ``url``/mcp (streamable HTTP) with ``key`` as the bearer key."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    http_client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0))
    return Client(streamable_http_client(f"{url}/mcp", http_client=http_client))


def data(result: CallToolResult) -> dict[str, Any]:
    """A successful tool result's structured content."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error(result: CallToolResult) -> str:
    """A tool error's message (checked to be one without a traceback)."""
    assert result.is_error
    text = "".join(getattr(part, "text", "") for part in result.content)
    assert "Traceback" not in text
    return text


async def check_search_and_read(client: Client, kb: str) -> None:
    """Search finds the right page of the PDF with its citation; reading that page gives its text."""
    found = data(await client.call_tool("search", {"knowledge_base": kb, "query": "lighthouse keeper brass lamp"}))
    top = found["passages"][0]
    assert top["document"] == "harbour.pdf"
    assert (top["page"], top["page_end"]) == (2, 2)
    assert top["citation"] == "harbour.pdf, p. 2"
    assert "lighthouse" in top["text"].lower()
    assert "<mark>" in top["text"]
    page = data(
        await client.call_tool(
            "read_document_page", {"knowledge_base": kb, "document_id": top["document_id"], "page": 2}
        )
    )
    assert page["document"] == "harbour.pdf"
    assert (page["page"], page["pages"], page["truncated"]) == (2, 3, False)
    assert "lighthouse keeper polishes the brass lamp" in page["text"]
    assert "Invoices" not in page["text"]


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the knowledge base `harbour` (the PDF and the note), ingested by the CLI."""
    home = tmp_path_factory.mktemp("mcp-home")
    docs = make_docs(tmp_path_factory.mktemp("mcp-docs"))
    _zhiku(home, "kb", "create", "harbour", *SMALL_CHUNKS)
    _zhiku(home, "ingest", str(docs), "--kb", "harbour")
    return home


def test_stdio_embedded_tools_search_pages_and_errors(embedded_home: Path) -> None:
    async def scenario() -> None:
        async with stdio(embedded_home) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert set(tools) == {"list_knowledge_bases", "search", "read_document_page"}
            assert tools["search"].input_schema["properties"]["top_k"]["maximum"] == 50
            assert "citation" in str(tools["search"].description)

            listed = data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"]
            assert [(kb["name"], kb["documents"]) for kb in listed] == [("harbour", 2)]
            await check_search_and_read(client, "harbour")
            # between calls the session holds no store open: another zhiku process can use the home meanwhile
            searched = await anyio.to_thread.run_sync(_zhiku, embedded_home, "search", "ferry", "--kb", "harbour")
            assert "notes.md" in searched

            found = data(await client.call_tool("search", {"knowledge_base": listed[0]["id"], "query": "ferry"}))
            assert found["knowledge_base"] == "harbour"
            note = next(p for p in found["passages"] if p["document"] == "notes.md")
            assert note["citation"] == "notes.md, p. 1"
            assert note["section"] == "Notes"

            # errors an agent can cause: one precise line each, the session goes on
            pdf_id = next(p for p in found["passages"] if p["document"] == "harbour.pdf")["document_id"]
            page = {"knowledge_base": "harbour", "document_id": pdf_id}
            assert "harbour.pdf has no page 9 (pages 1-3)" in error(
                await client.call_tool("read_document_page", page | {"page": 9})
            )
            assert "page" in error(await client.call_tool("read_document_page", page | {"page": 0}))
            assert "offset 999 is past the end of page 2" in error(
                await client.call_tool("read_document_page", page | {"page": 2, "offset": 999})
            )
            assert (
                "no document"
                in error(
                    await client.call_tool("read_document_page", page | {"document_id": "ffffffff", "page": 1})
                ).lower()
            )
            assert "no knowledge base named 'elsewhere'" in error(
                await client.call_tool("search", {"knowledge_base": "elsewhere", "query": "lamp"})
            )
            search = {"knowledge_base": "harbour", "query": "lamp"}
            assert "top_k" in error(await client.call_tool("search", search | {"top_k": 51}))
            assert "top_k" in error(await client.call_tool("search", search | {"top_k": 0}))
            assert "mode" in error(await client.call_tool("search", search | {"mode": "magic"}))
            assert "query" in error(await client.call_tool("search", search | {"query": "x" * 4001}))
            assert "query contains a NUL character" in error(
                await client.call_tool("search", search | {"query": "lamp\x00"})
            )
            assert "query must be a non-empty string" in error(
                await client.call_tool("search", search | {"query": " "})
            )
            assert data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"]  # still alive

    anyio.run(scenario)


class Server:
    """A real `zhiku serve` with auth on, a tenant A that holds the knowledge base `harbour`, and a tenant B."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.key_a = _zhiku(home, "keys", "create", "--tenant", "tenant-a", "--scope", "write").strip()
        self.key_b = _zhiku(home, "keys", "create", "--tenant", "tenant-b", "--scope", "read").strip()


def _ingest_over_rest(url: str, key: str, docs: Path) -> str:
    """Create `harbour` in the key's tenant, upload ``docs`` and wait until they are ready; returns its id."""
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=120) as api:
        created = api.post("/api/v1/knowledge-bases", json={"name": "harbour", "chunk_tokens": 32, "chunk_overlap": 0})
        assert created.status_code == 201, created.text
        kb_id = str(created.json()["id"])
        files = [("files", (path.name, path.read_bytes())) for path in sorted(docs.iterdir())]
        uploaded = api.post(f"/api/v1/knowledge-bases/{kb_id}/documents", files=files)
        assert uploaded.status_code == 201, uploaded.text
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            statuses = [d["status"] for d in api.get(f"/api/v1/knowledge-bases/{kb_id}/documents").json()]
            if statuses and all(s == "ready" for s in statuses):
                return kb_id
            assert "failed" not in statuses
            time.sleep(0.5)
    pytest.fail("the documents were not ingested in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The server, and the id of tenant A's knowledge base."""
    workdir = tmp_path_factory.mktemp("mcp-server")
    with zhiku_server(workdir, auth="on", admin_api_key=ADMIN, embedding_backend="torch") as (url, _):
        running = Server(url, workdir / "home")
        kb_id = _ingest_over_rest(url, running.key_a, make_docs(tmp_path_factory.mktemp("mcp-upload")))
        yield running, kb_id


def test_http_tenants_and_keys(server: tuple[Server, str]) -> None:
    running, kb_id = server

    async def scenario() -> None:
        async with http(running.url, running.key_a) as client:
            listed = data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"]
            assert [(kb["name"], kb["id"], kb["documents"]) for kb in listed] == [("harbour", kb_id, 2)]
            await check_search_and_read(client, "harbour")
        async with http(running.url, running.key_b) as client:
            assert data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"] == []
            for name in ("harbour", kb_id):
                message = error(await client.call_tool("search", {"knowledge_base": name, "query": "lamp"}))
                assert "no knowledge base named" in message
        async with http(running.url, ADMIN) as client:  # the admin key is tenant `default`'s
            assert data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"] == []

    anyio.run(scenario)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def test_http_refuses_missing_and_invalid_keys(server: tuple[Server, str]) -> None:
    running, _ = server
    headers = {"accept": "application/json, text/event-stream"}
    for key, message in ((None, "missing API key"), ("zk-not-a-key", "invalid or revoked API key")):
        sent = headers | ({"authorization": f"Bearer {key}"} if key else {})
        refused = httpx.post(f"{running.url}/mcp", json=INITIALIZE, headers=sent, timeout=30)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert message in refused.json()["error"]["message"]

    async def with_sdk(key: str | None) -> None:
        async with http(running.url, key) as client:
            await client.list_tools()

    for key in (None, "zk-not-a-key"):
        with pytest.raises(ExceptionGroup) as refused_by_sdk:  # the SDK's client stops at the 401
            anyio.run(with_sdk, key)
        assert refused_by_sdk.group_contains(MCPError)


def test_stdio_through_the_server_uses_the_keys_tenant(server: tuple[Server, str], tmp_path: Path) -> None:
    running, _ = server

    async def scenario() -> None:
        async with stdio(tmp_path, ZHIKU_URL=running.url, ZHIKU_API_KEY=running.key_a) as client:
            listed = data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"]
            assert [kb["name"] for kb in listed] == ["harbour"]
            await check_search_and_read(client, "harbour")
        async with stdio(tmp_path, ZHIKU_URL=running.url, ZHIKU_API_KEY=running.key_b) as client:
            assert data(await client.call_tool("list_knowledge_bases", {}))["knowledge_bases"] == []
            assert "no knowledge base named 'harbour'" in error(
                await client.call_tool("search", {"knowledge_base": "harbour", "query": "lamp"})
            )
        async with stdio(tmp_path, ZHIKU_URL=running.url, ZHIKU_API_KEY="zk-wrong") as client:
            assert "refused the API key" in error(await client.call_tool("list_knowledge_bases", {}))

    anyio.run(scenario)


def test_http_hostile_bodies(server: tuple[Server, str]) -> None:
    running, _ = server
    headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {running.key_a}"}
    headers_json = headers | {"content-type": "application/json"}
    with httpx.Client(base_url=running.url, timeout=60) as http_client:
        too_big = http_client.post("/mcp", content=b"{" + b" " * (4 * 1024 * 1024) + b"}", headers=headers_json)
        assert too_big.status_code == 413  # the server's max_request_bytes
        for body in (b"{not json", b"\xff\xfe\x00garbage", b"[]", b'{"jsonrpc": "2.0", "id": 1, "method": 7}'):
            refused = http_client.post("/mcp", content=body, headers=headers_json)
            assert 400 <= refused.status_code < 500, (body, refused.status_code, refused.text)
            assert "Traceback" not in refused.text
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
        hostile = call | {"params": {"name": "search", "arguments": {"knowledge_base": "harbour\x00", "query": "x"}}}
        answered = http_client.post("/mcp", json=INITIALIZE, headers=headers)
        assert answered.status_code == 200, answered.text
        result = http_client.post("/mcp", json=hostile, headers=headers | {"mcp-protocol-version": "2025-06-18"})
        assert result.status_code == 200, result.text
        assert result.json()["result"]["isError"] is True
        assert "knowledge_base contains a NUL character" in result.text
