"""zhiku as a Model Context Protocol server (the official ``mcp`` SDK): three read-only tools for agents,
``list_knowledge_bases``, ``search`` (passages with citations) and ``read_document_page``.

Two transports, one set of tools, zhiku's own permissions:

* **stdio** (``zhiku mcp``, what desktop MCP clients launch; :mod:`zhiku.cli.mcp`): at each call, through the
  running zhiku server when one is found (``ZHIKU_URL`` + ``ZHIKU_API_KEY``, or ``$ZHIKU_HOME/server.json``), so
  that key's tenant and scope apply (:class:`RemoteBackend`); otherwise on the stores of ``$ZHIKU_HOME`` directly,
  as the local user, tenant ``default`` (:class:`EmbeddedBackend`).
* **streamable HTTP** at ``/mcp`` of ``zhiku serve`` (:class:`McpEndpoint`, stateless JSON responses, so it works
  with ``--workers N`` and behind load balancers): every request is authenticated by zhiku's own
  ``Authorization: Bearer`` check (401 without a valid key when auth is on), needs the ``read`` scope, counts
  against the ``read`` rate limit, and sees only its key's tenant.

Every failure an agent can cause (unknown knowledge base or document, a page out of range, arguments out of
bounds) comes back as an MCP tool error with zhiku's one-line message, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import quote

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from zhiku import __version__
from zhiku.api.auth import authorize
from zhiku.api.schemas import HitOut, KnowledgeBaseOut
from zhiku.errors import ZhikuError
from zhiku.knowledge import bases
from zhiku.knowledge.documents import get_document
from zhiku.knowledge.pages import document_page
from zhiku.search import retrieve
from zhiku.search.options import MAX_QUERY_CHARS, SearchOptions

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from zhiku.api.deps import AppState
    from zhiku.client import Client
    from zhiku.core import Zhiku

MAX_TOP_K = 50
"""The most passages one ``search`` call returns (an agent's context is the limit, not zhiku's)."""
DEFAULT_TOP_K = 8
MAX_PAGE_CHARS = 20_000
"""The most characters one ``read_document_page`` call returns; ``offset`` reads on."""
MAX_PAGE_NUMBER = 1_000_000
MAX_NAME_CHARS = 200
PRINCIPAL_KEY = "zhiku.principal"
"""Where :class:`McpEndpoint` leaves the authenticated principal in the ASGI scope for the tools."""

INSTRUCTIONS = (
    "zhiku is a semantic search engine over the user's own documents, grouped in knowledge bases. Call "
    "list_knowledge_bases first, then search one with a natural-language query (any language). Every passage "
    "comes with a citation (document and page): cite it when you use the passage. To read more around a passage, "
    "call read_document_page with its knowledge base, document_id and page."
)


class KnowledgeBaseInfo(BaseModel):
    """A knowledge base the caller may search."""

    id: str
    name: str
    description: str
    documents: int = Field(description="Documents ready to search.")
    chunks: int = Field(description="Searchable passages.")
    model: str = Field(description="The embedding model of its index.")


class KnowledgeBaseList(BaseModel):
    """The caller's knowledge bases."""

    knowledge_bases: list[KnowledgeBaseInfo]


class Passage(BaseModel):
    """One search hit with its citation."""

    citation: str = Field(description="Document and page(s), to cite, e.g. 'manual.pdf, p. 3'.")
    document: str = Field(description="The document's file name.")
    document_id: str = Field(description="Pass to read_document_page.")
    chunk_id: str
    title: str | None = None
    page: int = Field(description="The (first) page the passage is on; 1-based.")
    page_end: int = Field(description="The last page the passage is on.")
    section: str = Field(description="The headings the passage is under, outermost first ('' when none).")
    score: float
    text: str = Field(description="The passage; the query's terms are wrapped in <mark>...</mark>.")


class SearchResult(BaseModel):
    """Passages, best first."""

    knowledge_base: str
    knowledge_base_id: str
    query: str
    mode: str
    passages: list[Passage]


class DocumentPage(BaseModel):
    """The text of one page of a document (a slice of it when the page is long)."""

    document: str
    document_id: str
    page: int
    pages: int = Field(description="How many pages the document has.")
    offset: int = Field(description="Where in the page's text this slice starts.")
    text: str
    truncated: bool = Field(description="True when the page goes on after this slice.")
    next_offset: int | None = Field(description="The offset that reads on, or null at the page's end.")


class Backend(Protocol):
    """Where the tools' answers come from: zhiku's REST API (a running server) or its stores (embedded). Both
    answer in the REST API's shapes (``KnowledgeBaseOut``, ``HitOut``, ``PageOut``, ``DocumentOut``)."""

    def knowledge_bases(self) -> list[dict[str, Any]]:
        """The tenant's knowledge bases with counts."""
        ...

    def search(self, knowledge_base: str, query: str, mode: str, top_k: int) -> tuple[dict[str, Any], list[Any]]:
        """The knowledge base (by name or id) and the hits of a search in it."""
        ...

    def page(self, knowledge_base: str, document_id: str, page: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A document (by id or unique prefix) and the text of one of its pages."""
        ...


class RemoteBackend:
    """A running zhiku server, through :class:`~zhiku.client.Client` (its key's tenant and scope apply)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def knowledge_bases(self) -> list[dict[str, Any]]:
        """The key's knowledge bases."""
        return self.client.list_knowledge_bases()

    def search(self, knowledge_base: str, query: str, mode: str, top_k: int) -> tuple[dict[str, Any], list[Any]]:
        """Search through ``POST .../search``."""
        kb = self.client.get_knowledge_base(knowledge_base)
        found = self.client.search(kb["id"], {"query": query, "mode": mode, "top_k": top_k})
        return kb, list(found["hits"])

    def page(self, knowledge_base: str, document_id: str, page: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A page through ``GET .../documents/{id}/pages/{page}``."""
        kb = self.client.get_knowledge_base(knowledge_base)
        document = self.client.get_document(kb["id"], document_id)
        path = f"/api/v1/knowledge-bases/{_part(kb['id'])}/documents/{_part(document['id'])}/pages/{page}"
        return document, dict(self.client.request("GET", path))


class EmbeddedBackend:
    """zhiku's stores opened in this process, as one tenant (the local user's ``default``, or the tenant of the
    key an HTTP request was authenticated with)."""

    def __init__(self, zhiku: Zhiku, tenant_id: str) -> None:
        self.zhiku = zhiku
        self.tenant_id = tenant_id

    def knowledge_bases(self) -> list[dict[str, Any]]:
        """The tenant's knowledge bases."""
        found = []
        for kb in bases.list_knowledge_bases(self.zhiku, self.tenant_id):
            stats = bases.knowledge_base_stats(self.zhiku, kb)
            found.append(KnowledgeBaseOut.of(kb, stats.documents, stats.chunks).model_dump(mode="json"))
        return found

    def search(self, knowledge_base: str, query: str, mode: str, top_k: int) -> tuple[dict[str, Any], list[Any]]:
        """Search with :func:`zhiku.search.retrieve.search`."""
        kb = bases.get_knowledge_base(self.zhiku, knowledge_base, self.tenant_id)
        hits = retrieve.search(self.zhiku, kb, query, SearchOptions(mode=mode, top_k=top_k))  # type: ignore[arg-type]
        return {"id": kb.id, "name": kb.name}, [HitOut.of(hit).model_dump(mode="json") for hit in hits]

    def page(self, knowledge_base: str, document_id: str, page: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A page of the document, as the page preview of the REST API gives it
        (:func:`zhiku.knowledge.pages.document_page`)."""
        kb = bases.get_knowledge_base(self.zhiku, knowledge_base, self.tenant_id)
        document = get_document(self.zhiku, kb, document_id)
        found = document_page(self.zhiku, document, page)
        return {"id": document.id, "filename": document.filename}, {
            "page": found.page,
            "pages": found.pages,
            "text": found.text,
            "ocr_confidence": found.ocr_confidence,
        }


def _part(value: str) -> str:
    return quote(value, safe="")


def _pages(start: int, end: int) -> str:
    return f"p. {start}" if end <= start else f"pp. {start}-{end}"


def _passage(hit: dict[str, Any]) -> Passage:
    start, end = int(hit["page_start"]), int(hit["page_end"])
    return Passage(
        citation=f"{hit['filename']}, {_pages(start, end)}",
        document=hit["filename"],
        document_id=hit["document_id"],
        chunk_id=hit["chunk_id"],
        title=hit.get("title"),
        page=start,
        page_end=max(start, end),
        section=" > ".join(hit.get("heading_path") or []),
        score=round(float(hit["score"]), 4),
        text=hit.get("highlighted") or hit["text"],
    )


T = TypeVar("T")


async def _answer(call: Callable[[], T]) -> T:
    """Run a backend call in a worker thread; zhiku's errors become tool errors with zhiku's message."""
    try:
        return await anyio.to_thread.run_sync(call)
    except ZhikuError as exc:
        raise ToolError(exc.message) from None


def _no_nul(value: str, name: str) -> None:
    """Refuse a NUL character (no name, id or query holds one; the stores would reject it less clearly)."""
    if "\x00" in value:
        raise ToolError(f"{name} contains a NUL character")


BackendFor = Callable[[Context], Backend]
"""How the tools find their backend for one call: one fixed backend (stdio), or the request's tenant (HTTP)."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def build_server(backend_for: BackendFor) -> MCPServer:
    """The MCP server with zhiku's tools, answering from ``backend_for(context)``."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server: MCPServer = MCPServer(
        "zhiku", title="zhiku knowledge-base search", instructions=INSTRUCTIONS, version=__version__
    )
    # the SDK configures the root logger (a Rich handler at INFO) when it builds a server; zhiku's processes keep
    # their own logging
    root.handlers[:] = handlers
    root.setLevel(level)

    @server.tool(annotations=READ_ONLY)
    async def list_knowledge_bases(ctx: Context) -> KnowledgeBaseList:
        """List the knowledge bases you can search: their names, descriptions and how many documents and
        passages each holds. Call this first to learn which knowledge base to search."""
        backend = backend_for(ctx)
        rows = await _answer(backend.knowledge_bases)
        return KnowledgeBaseList(
            knowledge_bases=[
                KnowledgeBaseInfo(
                    id=row["id"],
                    name=row["name"],
                    description=row.get("description") or "",
                    documents=int((row.get("documents") or {}).get("ready", 0)),
                    chunks=int(row.get("chunks") or 0),
                    model=row.get("model") or "",
                )
                for row in rows
            ]
        )

    @server.tool(annotations=READ_ONLY)
    async def search(
        ctx: Context,
        knowledge_base: Annotated[
            str, Field(min_length=1, max_length=MAX_NAME_CHARS, description="The knowledge base's name or id.")
        ],
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_QUERY_CHARS,
                description="What to look for: a question or keywords, in any language.",
            ),
        ],
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many passages to return.")] = DEFAULT_TOP_K,
        mode: Annotated[
            Literal["hybrid", "dense", "lexical"],
            Field(
                description="hybrid (default, best for most queries), dense (meaning only) or lexical (exact "
                "words, names, codes)."
            ),
        ] = "hybrid",
    ) -> SearchResult:
        """Search a knowledge base for passages relevant to a query (semantic and keyword search). Returns the
        best passages first, each with a citation (document file name and page) and a document_id; cite the
        citation when you use a passage, and call read_document_page with the document_id and page to read the
        whole page around it."""
        _no_nul(knowledge_base, "knowledge_base")
        _no_nul(query, "query")
        backend = backend_for(ctx)
        kb, hits = await _answer(lambda: backend.search(knowledge_base, query, mode, top_k))
        return SearchResult(
            knowledge_base=kb["name"],
            knowledge_base_id=kb["id"],
            query=query,
            mode=mode,
            passages=[_passage(hit) for hit in hits],
        )

    @server.tool(annotations=READ_ONLY)
    async def read_document_page(
        ctx: Context,
        knowledge_base: Annotated[
            str, Field(min_length=1, max_length=MAX_NAME_CHARS, description="The knowledge base's name or id.")
        ],
        document_id: Annotated[
            str, Field(min_length=1, max_length=100, description="The document_id of a search passage.")
        ],
        page: Annotated[int, Field(ge=1, le=MAX_PAGE_NUMBER, description="The page number, 1-based.")],
        offset: Annotated[
            int,
            Field(ge=0, le=10**9, description="Start this many characters into the page (to read on a long page)."),
        ] = 0,
    ) -> DocumentPage:
        """Read the full text of one page of a document (at most 20,000 characters per call; when `truncated`
        is true, call again with `offset` set to `next_offset`). Use it to read the context around a search
        passage: pass the passage's knowledge base, document_id and page. Documents without pages (text,
        Markdown, HTML) have one page."""
        _no_nul(knowledge_base, "knowledge_base")
        _no_nul(document_id, "document_id")
        backend = backend_for(ctx)
        document, found = await _answer(lambda: backend.page(knowledge_base, document_id, page))
        text = str(found["text"])
        if offset > len(text) or (offset and offset == len(text)):
            raise ToolError(f"offset {offset} is past the end of page {page} ({len(text):,} characters)")
        end = min(len(text), offset + MAX_PAGE_CHARS)
        return DocumentPage(
            document=document["filename"],
            document_id=document["id"],
            page=page,
            pages=int(found["pages"]),
            offset=offset,
            text=text[offset:end],
            truncated=end < len(text),
            next_offset=end if end < len(text) else None,
        )

    return server


def run_stdio(backend: Backend) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    build_server(lambda _: backend).run("stdio")


class McpEndpoint:
    """The ASGI endpoint ``/mcp`` of the API server: MCP over streamable HTTP, stateless, JSON responses.

    Each request is authorised as a REST request of the ``read`` class is (zhiku's bearer-key check, the
    ``read`` scope, the rate limit), then answered with the stores of the app, as the key's tenant. Run
    :meth:`running` in the app's lifespan."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.server = build_server(self._backend)
        # stateless: no session lives in one process, so several workers (or replicas) can answer a client;
        # no DNS-rebinding host check: zhiku's bearer keys guard this route as they guard the REST API
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=state.settings.max_request_bytes,
        )
        self.sessions = self.server.session_manager

    def route(self) -> Route:
        """The route ``/mcp`` (every method: POST carries the messages; GET and DELETE answer as the SDK does)."""
        return Route("/mcp", endpoint=self, include_in_schema=False)

    def running(self) -> AbstractAsyncContextManager[None]:
        """The MCP session manager's task group, for the app's lifespan."""
        return self.sessions.run()

    def _backend(self, ctx: Context) -> Backend:
        request = ctx.request_context.request
        principal = request.scope.get(PRINCIPAL_KEY) if isinstance(request, Request) else None
        if principal is None:  # pragma: no cover - every request passes __call__ first
            raise ToolError("this request was not authenticated")
        return EmbeddedBackend(self.state.zhiku, principal.tenant_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # raises zhiku's errors (401, 403, 429), which the app's error handlers answer as for any route
        principal = await authorize("read", "read")(Request(scope, receive))
        scope[PRINCIPAL_KEY] = principal
        await self.sessions.handle_request(scope, receive, send)
