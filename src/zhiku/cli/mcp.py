"""``zhiku mcp``: zhiku's search as a Model Context Protocol server on stdin/stdout, for desktop agents."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from zhiku.cli.common import find_server, open_zhiku

if TYPE_CHECKING:
    from zhiku.api.mcp import Backend


class PerCallBackend:
    """The tools' backend for a session that lasts as long as the agent runs (a desktop app: all day): for each
    call, the zhiku server found then (it may start or stop meanwhile), else the stores of ``ZHIKU_HOME`` opened for
    that call only, as the local user (tenant ``default``). Held open, the embedded vector store (one process at a
    time) would keep ``zhiku serve`` and ``zhiku ingest`` out of the home; the model stays loaded between calls."""

    @contextlib.contextmanager
    def _backend(self) -> Iterator[Backend]:
        from zhiku.api.mcp import EmbeddedBackend, RemoteBackend

        server = find_server()
        if server is not None:
            with server:
                yield RemoteBackend(server)
            return
        with open_zhiku() as zhiku:
            yield EmbeddedBackend(zhiku, "default")

    def knowledge_bases(self) -> list[dict[str, Any]]:
        """The knowledge bases of the server's key, or of the local user."""
        with self._backend() as backend:
            return backend.knowledge_bases()

    def search(self, knowledge_base: str, query: str, mode: str, top_k: int) -> tuple[dict[str, Any], list[Any]]:
        """A search, through the server or embedded."""
        with self._backend() as backend:
            return backend.search(knowledge_base, query, mode, top_k)

    def page(self, knowledge_base: str, document_id: str, page: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A document's page, through the server or embedded."""
        with self._backend() as backend:
            return backend.page(knowledge_base, document_id, page)


def mcp_command() -> None:
    """Serve zhiku's search to an MCP agent (Claude Desktop, IDEs) over stdio.

    Tools: list_knowledge_bases, search (passages with citations) and read_document_page. Each call goes through the
    running zhiku server when there is one (ZHIKU_URL and ZHIKU_API_KEY, or the local `zhiku serve`), with that
    key's tenant; otherwise it opens ZHIKU_HOME itself. Over HTTP, `zhiku serve` answers MCP at /mcp (see
    docs/mcp.md)."""
    # imported here, not at the top: only this command loads the MCP SDK
    from zhiku.api.mcp import run_stdio

    run_stdio(PerCallBackend())
