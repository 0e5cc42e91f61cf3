"""``zhiku mcp``: zhiku's search as a Model Context Protocol server on stdin/stdout, for desktop agents."""

from __future__ import annotations

from zhiku.cli.common import find_server, open_zhiku


def mcp_command() -> None:
    """Serve zhiku's search to an MCP agent (Claude Desktop, IDEs) over stdio.

    Tools: list_knowledge_bases, search (passages with citations) and read_document_page. Goes through the running
    zhiku server when there is one (ZHIKU_URL and ZHIKU_API_KEY, or the local `zhiku serve`), with that key's
    tenant; otherwise opens ZHIKU_HOME itself. Over HTTP, `zhiku serve` answers MCP at /mcp (see docs/mcp.md)."""
    # imported here, not at the top: only this command loads the MCP SDK
    from zhiku.api.mcp import EmbeddedBackend, RemoteBackend, run_stdio

    server = find_server()
    if server is not None:
        with server:
            run_stdio(RemoteBackend(server))
        return
    with open_zhiku() as zhiku:
        run_stdio(EmbeddedBackend(zhiku, "default"))
