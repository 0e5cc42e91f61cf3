"""`zhiku kb` (knowledge bases), `zhiku docs` (their documents) and `zhiku search`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import find_server, open_zhiku, out, parse_meta
from zhiku.knowledge.bases import (
    create_knowledge_base,
    delete_knowledge_base,
    get_knowledge_base,
    knowledge_base_stats,
    list_knowledge_bases,
)
from zhiku.knowledge.documents import delete_document, get_document, label_document, list_documents
from zhiku.knowledge.similar import similar_documents
from zhiku.search.filters import parse_date, parse_filters
from zhiku.search.highlight import mark
from zhiku.search.hyde import hypothetical_answer
from zhiku.search.options import MAX_TOP_K, TOP_K, SearchOptions
from zhiku.search.retrieve import Hit, check_search, search

kb_app = typer.Typer(help="Create, list, show and delete knowledge bases.", no_args_is_help=True)
docs_app = typer.Typer(help="List, label and delete documents of a knowledge base.", no_args_is_help=True)


@kb_app.command("create")
def kb_create(
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Embedding model (default: settings).")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="Matryoshka dimension (default: native).")] = None,
    index_dim: Annotated[
        int | None, typer.Option("--index-dim", help="Matryoshka two-stage: index this prefix, rescore at --dim.")
    ] = None,
    instruction: Annotated[str | None, typer.Option("--instruction", "-i", help="Query task preset or text.")] = None,
    chunk_tokens: Annotated[int | None, typer.Option("--chunk-tokens", help="Chunk size in tokens.")] = None,
    overlap: Annotated[int | None, typer.Option("--overlap", help="Chunk overlap in tokens.")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
) -> None:
    """Create a knowledge base (its model, dimension and instruction are fixed for its lifetime)."""
    server = find_server()
    if server is not None:
        with server:
            body = {
                "name": name,
                "model": model,
                "dimension": dim,
                "index_dimension": index_dim,
                "instruction": instruction,
                "chunk_tokens": chunk_tokens,
                "chunk_overlap": overlap,
                "description": description,
            }
            made = server.create_knowledge_base({k: v for k, v in body.items() if v is not None})
        _print_created(
            made["name"], made["id"], made["model"], made["dimension"], made["chunk_tokens"], made["chunk_overlap"]
        )
        return
    with open_zhiku() as zhiku:
        kb = create_knowledge_base(
            zhiku,
            name,
            model=model,
            dimension=dim,
            index_dimension=index_dim,
            instruction=instruction,
            chunk_tokens=chunk_tokens,
            chunk_overlap=overlap,
            description=description,
        )
    _print_created(kb.name, kb.id, kb.embedding_model, kb.dimension, kb.chunk_tokens, kb.chunk_overlap)


def _print_created(name: str, kb_id: str, model: str, dimension: int, chunk_tokens: int, overlap: int) -> None:
    out.print(
        f"created knowledge base [bold]{escape(name)}[/] ({kb_id}): {model}, {dimension} dims, "
        f"chunks of {chunk_tokens} tokens (overlap {overlap})"
    )


@kb_app.command("list")
def kb_list() -> None:
    """List knowledge bases with their document and chunk counts."""
    server = find_server()
    if server is not None:
        with server:
            listed = server.list_knowledge_bases()
        _print_kb_table(
            (kb["name"], kb["model"], kb["dimension"], kb["documents"], kb["chunks"], _time(kb["created_at"]))
            for kb in listed
        )
        return
    with open_zhiku() as zhiku:
        rows = []
        for kb in list_knowledge_bases(zhiku):
            stats = knowledge_base_stats(zhiku, kb)
            rows.append((kb.name, kb.embedding_model, kb.dimension, stats.documents, stats.chunks, kb.created_at))
    _print_kb_table(rows)


def _print_kb_table(rows: Iterable[tuple[str, str, int, Mapping[str, int], int, dt.datetime]]) -> None:
    table = Table(title="knowledge bases")
    for column in ("name", "model", "dims", "documents", "ready", "chunks", "created"):
        table.add_column(column, overflow="fold")  # a narrow terminal wraps a name, never cuts it
    for name, model, dimension, documents, chunks, created in rows:
        table.add_row(
            escape(name),
            escape(model),
            str(dimension),
            str(sum(documents.values())),
            str(documents.get("ready", 0)),
            str(chunks),
            created.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def _time(value: Any) -> dt.datetime:
    """A date-time of the API's JSON (ISO 8601) as the embedded rows have it."""
    return dt.datetime.fromisoformat(str(value))


def _optional_time(value: Any) -> dt.datetime | None:
    return _time(value) if value else None


@kb_app.command("show")
def kb_show(name: Annotated[str, typer.Argument(help="Knowledge base name or id.")]) -> None:
    """Show a knowledge base's settings and counts."""
    server = find_server()
    if server is not None:
        with server:
            kb_out = server.get_knowledge_base(name)
        _print_kb_show(
            kb_out["name"],
            [
                ("id", kb_out["id"]),
                ("model", kb_out["model"]),
                ("dimension", kb_out["dimension"]),
                ("index dimension", kb_out["index_dimension"] or "(full)"),
                ("instruction", kb_out["instruction"] or "(model default)"),
                ("chunk tokens", kb_out["chunk_tokens"]),
                ("chunk overlap", kb_out["chunk_overlap"]),
                ("documents", _documents_text(kb_out["documents"])),
                ("chunks", kb_out["chunks"]),
                ("vectors", "(counted by the server's vector store; not in its API)"),
                ("created", _time(kb_out["created_at"]).isoformat(timespec="seconds")),
            ],
        )
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, name)
        stats = knowledge_base_stats(zhiku, kb)
        vectors = zhiku.vectors.count(kb.collection)
    _print_kb_show(
        kb.name,
        [
            ("id", kb.id),
            ("model", kb.embedding_model),
            ("dimension", kb.dimension),
            ("index dimension", kb.index_dimension or "(full)"),
            ("instruction", kb.instruction or "(model default)"),
            ("chunk tokens", kb.chunk_tokens),
            ("chunk overlap", kb.chunk_overlap),
            ("documents", _documents_text(stats.documents)),
            ("chunks", stats.chunks),
            ("vectors", vectors),
            ("created", kb.created_at.isoformat(timespec="seconds")),
        ],
    )


def _documents_text(documents: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in documents.items()) or "0"


def _print_kb_show(name: str, rows: Sequence[tuple[str, object]]) -> None:
    table = Table(show_header=False, title=f"knowledge base {name}")
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)


@kb_app.command("delete")
def kb_delete(
    name: Annotated[str, typer.Argument(help="Knowledge base name or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a knowledge base with all its documents, chunks and vectors."""
    server = find_server()
    if server is not None:
        with server:
            found = server.get_knowledge_base(name)
            if not yes and not typer.confirm(f"Delete knowledge base {found['name']!r} and everything in it?"):
                raise typer.Exit(1)
            server.delete_knowledge_base(found["id"])
        out.print(f"deleted knowledge base {found['name']}")
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, name)
        if not yes and not typer.confirm(f"Delete knowledge base {kb.name!r} and everything in it?"):
            raise typer.Exit(1)
        delete_knowledge_base(zhiku, kb)
    out.print(f"deleted knowledge base {kb.name}")


@docs_app.command("list")
def docs_list(kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")]) -> None:
    """List a knowledge base's documents."""
    server = find_server()
    if server is not None:
        with server:
            kb_out = server.get_knowledge_base(kb_name)
            listed = server.list_documents(kb_out["id"])
        _print_documents(
            kb_out["name"],
            (
                DocumentRow(
                    d["id"],
                    d["filename"],
                    d["status"],
                    d["version"],
                    d["pages"],
                    d["chunk_count"],
                    d["mime_type"],
                    d["tags"],
                    d["metadata"],
                    d["error"],
                    d.get("auto_tags") or {},
                )
                for d in listed
            ),
        )
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        rows = [
            DocumentRow(
                d.id,
                d.filename,
                d.status,
                d.version,
                d.pages,
                d.chunk_count,
                d.mime_type,
                d.tags,
                d.meta,
                d.error,
                d.auto_tags,
            )
            for d in list_documents(zhiku, kb)
        ]
    _print_documents(kb.name, rows)


@dataclass(frozen=True)
class DocumentRow:
    """What ``zhiku docs list`` shows of a document."""

    id: str
    filename: str
    status: str
    version: int
    pages: int | None
    chunk_count: int
    mime_type: str | None
    tags: Sequence[str]
    meta: Mapping[str, Any]
    error: str | None
    auto_tags: Mapping[str, float]
    """Which of ``tags`` auto-tagging gave, with its confidence."""


def _print_documents(kb_name: str, rows: Iterable[DocumentRow]) -> None:
    table = Table(title=f"documents of {kb_name}")
    for column in ("id", "file", "status", "version", "pages", "chunks", "type", "tags", "metadata", "error"):
        table.add_column(column, overflow="fold")
    for d in rows:
        meta = ", ".join(f"{k}={v}" for k, v in sorted(d.meta.items()))
        table.add_row(
            d.id[:12],
            escape(d.filename),
            d.status,
            str(d.version),
            str(d.pages or ""),
            str(d.chunk_count),
            d.mime_type or "",
            escape(", ".join(f"{t} ({d.auto_tags[t]:.2f})" if t in d.auto_tags else t for t in d.tags)),
            escape(meta),
            escape(d.error or ""),
        )
    out.print(table)


@docs_app.command("label")
def docs_label(
    document_id: Annotated[str, typer.Argument(help="Document id (or a unique prefix).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Add this tag (repeatable).")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", help="Remove this tag (repeatable).")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Set metadata KEY=VALUE (repeatable).")] = None,
    unset: Annotated[list[str] | None, typer.Option("--unset", help="Remove this metadata key.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="The document's date (ISO 8601).")] = None,
) -> None:
    """Change a document's tags, metadata or date (used by search filters; no re-indexing needed)."""
    metadata = parse_meta(meta or [])
    when = parse_date(date, param="date") if date else None
    server = find_server()
    if server is not None:
        body = {
            "add_tags": tag or [],
            "remove_tags": untag or [],
            "set_metadata": metadata,
            "unset_metadata": unset or [],
            "document_date": when.isoformat() if when else None,
        }
        with server:
            kb_out = server.get_knowledge_base(kb_name)
            labelled = server.label_document(kb_out["id"], document_id, body)
        _print_labels(labelled["filename"], labelled["tags"], labelled["metadata"])
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        document = label_document(
            zhiku,
            get_document(zhiku, kb, document_id),
            add_tags=tag or (),
            remove_tags=untag or (),
            set_metadata=metadata,
            unset_metadata=unset or (),
            document_date=when,
        )
    _print_labels(document.filename, document.tags, document.meta)


def _print_labels(filename: str, tags: Sequence[str], meta: Mapping[str, Any]) -> None:
    meta_text = ", ".join(f"{k}={v}" for k, v in sorted(meta.items()))
    out.print(f"{filename}: tags [{', '.join(tags)}], metadata {{{meta_text}}}", markup=False)


@docs_app.command("similar")
def docs_similar(
    document_id: Annotated[str, typer.Argument(help="Document id (or a unique prefix).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K, help="How many documents.")] = TOP_K,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Documents most like this one ("more like this"), across languages: by the cosine of document vectors."""
    server = find_server()
    if server is not None:
        with server:
            kb_out = server.get_knowledge_base(kb_name)
            target = server.get_document(kb_out["id"], document_id)
            listed = server.similar_documents(kb_out["id"], target["id"], top_k)
        rows = [
            SimilarRow(s["document"]["id"], s["document"]["filename"], s["document"]["title"], s["score"])
            for s in listed
        ]
        _print_similar(target["filename"], rows, as_json)
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        document = get_document(zhiku, kb, document_id)
        found = similar_documents(zhiku, kb, document, top_k)
    rows = [SimilarRow(s.document.id, s.document.filename, s.document.title, s.score) for s in found]
    _print_similar(document.filename, rows, as_json)


@dataclass(frozen=True)
class SimilarRow:
    """What ``zhiku docs similar`` shows of a similar document."""

    id: str
    filename: str
    title: str | None
    score: float


def _print_similar(filename: str, rows: Sequence[SimilarRow], as_json: bool) -> None:
    if as_json:
        out.print_json(data=[asdict(row) for row in rows])
        return
    if not rows:
        out.print(f"no other ready documents to compare with {filename}", markup=False)
        return
    table = Table(title=f"documents like {escape(filename)}")
    for column in ("similarity", "id", "file", "title"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(f"{row.score:.3f}", row.id[:12], escape(row.filename), escape(row.title or ""))
    out.print(table)


@docs_app.command("delete")
def docs_delete(
    document_id: Annotated[str, typer.Argument(help="Document id (or a unique prefix).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
) -> None:
    """Delete a document, its chunks and vectors."""
    server = find_server()
    if server is not None:
        with server:
            kb_out = server.get_knowledge_base(kb_name)
            found = server.get_document(kb_out["id"], document_id)
            server.delete_document(kb_out["id"], found["id"])
        out.print(f"deleted {found['filename']} ({found['id']})")
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        document = get_document(zhiku, kb, document_id)
        delete_document(zhiku, kb, document)
    out.print(f"deleted {document.filename} ({document.id})")


def search_command(
    query: Annotated[str, typer.Argument(help="What to look for, in any language.")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    mode: Annotated[str, typer.Option("--mode", help="dense, lexical or hybrid.")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", "-k", help=f"Number of hits (1 to {MAX_TOP_K}).")] = TOP_K,
    document: Annotated[
        list[str] | None, typer.Option("--document", "-d", help="Only these document ids (repeatable).")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            "-f",
            help="tag=NAME (tag=a|b: any), KEY=VALUE (metadata), date>=2024-01-01, date<2025-01-01, "
            "document=FILE-OR-ID, type=pdf. Repeatable; all must hold.",
        ),
    ] = None,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Drop hits below this relevance (0-1, any query or mode).")
    ] = None,
    neighbours: Annotated[int, typer.Option("--neighbours", help="Add N chunks of context each side.")] = 0,
    rerank: Annotated[
        str | None, typer.Option("--rerank", help="Reorder the top 30 with this reranker (name or folder).")
    ] = None,
    hyde: Annotated[
        bool,
        typer.Option(
            "--hyde",
            help="Also search for a passage the chat model (ZHIKU_CHAT_URL) writes to answer the query "
            "(dense and hybrid).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search a knowledge base; hits carry document, page span, offsets, highlighted passage and scores."""
    document_filter = parse_filters(filters or [])
    options = SearchOptions(
        mode=mode,  # type: ignore[arg-type]
        top_k=top_k,
        document_ids=document,
        filter=document_filter,
        min_score=min_score,
        neighbours=neighbours,
        rerank=rerank,
        hyde=hyde,
    )
    server = find_server()
    if server is not None:
        check_search(query, options)  # the same messages as embedded, before any request
        body = {
            "query": query,
            "mode": mode,
            "top_k": top_k,
            "filters": filters or [],
            "document_ids": document,
            "min_score": min_score,
            "neighbours": neighbours,
            "rerank": rerank is not None,  # the server's own reranker
            "hyde": hyde,  # the server's own chat model
        }
        with server:
            kb_out = server.get_knowledge_base(kb_name)
            found = server.search(kb_out["id"], body)
        if as_json:
            typer.echo(json.dumps(found["hits"], ensure_ascii=False))
            return
        _print_hypothetical(found.get("hypothetical_answer"))
        _print_hits(kb_out["name"], query, mode, [_hit(h) for h in found["hits"]])
        return
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        if hyde:  # asked first, to show it
            check_search(query, options)
            options = replace(options, hypothetical_answer=hypothetical_answer(zhiku.settings, query))
        hits = search(zhiku, kb, query, options)
    if as_json:
        typer.echo(json.dumps([asdict(h) | {"highlighted": h.highlighted} for h in hits], ensure_ascii=False))
        return
    _print_hypothetical(options.hypothetical_answer)
    _print_hits(kb.name, query, mode, hits)


def _print_hypothetical(passage: str | None) -> None:
    """HyDE's passage, said to be the chat model's guess (searched for, never an answer)."""
    if passage:
        out.print(f"[dim]HyDE also searched for the chat model's passage: {escape(passage)}[/]")


def _hit(row: Mapping[str, Any]) -> Hit:
    """A hit of the API (``HitOut``) as the search returns it (the API leaves out ``source`` and ``ordinal``)."""
    fields = {name: row[name] for name in Hit.__dataclass_fields__ if name in row}
    fields["highlights"] = [tuple(span) for span in fields.get("highlights", [])]
    return Hit(**{"source": row.get("filename", ""), "ordinal": -1, **fields})


def _print_hits(kb_name: str, query: str, mode: str, hits: Sequence[Hit]) -> None:
    table = Table(title=f"{mode} search in {kb_name}: {query}", show_lines=True)
    for column in ("#", "score", "document", "pages", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        pages = str(hit.page_start) if hit.page_start == hit.page_end else f"{hit.page_start}-{hit.page_end}"
        if hit.ocr_confidence is not None:  # read from a scan: say so, and how sure the OCR was
            pages += f"\nOCR {hit.ocr_confidence:.2f}"
        passage = mark(hit.text, hit.highlights, "[bold yellow]", "[/]", escape=escape)
        if hit.context_before or hit.context_after:
            passage = f"[dim]{hit.context_before[-200:]}[/]{passage}[dim]{hit.context_after[:200]}[/]"
        if hit.context:  # rows of a table: its header above them
            passage = f"[bold]{escape(hit.context)}[/]\n{passage}"
        table.add_row(str(rank), f"{hit.score:.3f}", escape(hit.filename), pages, passage)
    out.print(table)
    if not hits:
        out.print("no results")
