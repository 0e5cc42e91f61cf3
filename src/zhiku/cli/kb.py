"""`zhiku kb` (knowledge bases), `zhiku docs` (their documents) and `zhiku search`."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import open_zhiku, out, parse_meta
from zhiku.knowledge.bases import (
    create_knowledge_base,
    delete_knowledge_base,
    get_knowledge_base,
    knowledge_base_stats,
    list_knowledge_bases,
)
from zhiku.knowledge.documents import delete_document, get_document, label_document, list_documents
from zhiku.search.filters import parse_date, parse_filters
from zhiku.search.highlight import mark
from zhiku.search.options import MAX_TOP_K, TOP_K, SearchOptions
from zhiku.search.retrieve import search

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
    out.print(
        f"created knowledge base [bold]{kb.name}[/] ({kb.id}): {kb.embedding_model}, {kb.dimension} dims, "
        f"chunks of {kb.chunk_tokens} tokens (overlap {kb.chunk_overlap})"
    )


@kb_app.command("list")
def kb_list() -> None:
    """List knowledge bases with their document and chunk counts."""
    with open_zhiku() as zhiku:
        table = Table(title="knowledge bases")
        for column in ("name", "model", "dims", "documents", "ready", "chunks", "created"):
            table.add_column(column)
        for kb in list_knowledge_bases(zhiku):
            stats = knowledge_base_stats(zhiku, kb)
            table.add_row(
                kb.name,
                kb.embedding_model,
                str(kb.dimension),
                str(sum(stats.documents.values())),
                str(stats.documents.get("ready", 0)),
                str(stats.chunks),
                kb.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)


@kb_app.command("show")
def kb_show(name: Annotated[str, typer.Argument(help="Knowledge base name or id.")]) -> None:
    """Show a knowledge base's settings and counts."""
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, name)
        stats = knowledge_base_stats(zhiku, kb)
        vectors = zhiku.vectors.count(kb.collection)
    documents = ", ".join(f"{k}: {v}" for k, v in stats.documents.items()) or "0"
    table = Table(show_header=False, title=f"knowledge base {kb.name}")
    for key, value in [
        ("id", kb.id),
        ("model", kb.embedding_model),
        ("dimension", kb.dimension),
        ("index dimension", kb.index_dimension or "(full)"),
        ("instruction", kb.instruction or "(model default)"),
        ("chunk tokens", kb.chunk_tokens),
        ("chunk overlap", kb.chunk_overlap),
        ("documents", documents),
        ("chunks", stats.chunks),
        ("vectors", vectors),
        ("created", kb.created_at.isoformat(timespec="seconds")),
    ]:
        table.add_row(key, str(value))
    out.print(table)


@kb_app.command("delete")
def kb_delete(
    name: Annotated[str, typer.Argument(help="Knowledge base name or id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a knowledge base with all its documents, chunks and vectors."""
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, name)
        if not yes and not typer.confirm(f"Delete knowledge base {kb.name!r} and everything in it?"):
            raise typer.Exit(1)
        delete_knowledge_base(zhiku, kb)
    out.print(f"deleted knowledge base {kb.name}")


@docs_app.command("list")
def docs_list(kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")]) -> None:
    """List a knowledge base's documents."""
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        table = Table(title=f"documents of {kb.name}")
        for column in ("id", "file", "status", "version", "pages", "chunks", "type", "tags", "metadata", "error"):
            table.add_column(column, overflow="fold")
        for d in list_documents(zhiku, kb):
            meta = ", ".join(f"{k}={v}" for k, v in sorted(d.meta.items()))
            table.add_row(
                d.id[:12],
                d.filename,
                d.status,
                str(d.version),
                str(d.pages or ""),
                str(d.chunk_count),
                d.mime_type or "",
                ", ".join(d.tags),
                meta,
                d.error or "",
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
    meta_text = ", ".join(f"{k}={v}" for k, v in sorted(document.meta.items()))
    out.print(f"{document.filename}: tags [{', '.join(document.tags)}], metadata {{{meta_text}}}", markup=False)


@docs_app.command("delete")
def docs_delete(
    document_id: Annotated[str, typer.Argument(help="Document id (or a unique prefix).")],
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
) -> None:
    """Delete a document, its chunks and vectors."""
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
    min_score: Annotated[float | None, typer.Option("--min-score", help="Drop hits scoring below this.")] = None,
    neighbours: Annotated[int, typer.Option("--neighbours", help="Add N chunks of context each side.")] = 0,
    rerank: Annotated[
        str | None, typer.Option("--rerank", help="Reorder the top 30 with this reranker (name or folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search a knowledge base; hits carry document, page span, offsets, highlighted passage and scores."""
    document_filter = parse_filters(filters or [])
    with open_zhiku() as zhiku:
        kb = get_knowledge_base(zhiku, kb_name)
        options = SearchOptions(
            mode=mode,  # type: ignore[arg-type]
            top_k=top_k,
            document_ids=document,
            filter=document_filter,
            min_score=min_score,
            neighbours=neighbours,
            rerank=rerank,
        )
        hits = search(zhiku, kb, query, options)
    if as_json:
        typer.echo(json.dumps([asdict(h) | {"highlighted": h.highlighted} for h in hits], ensure_ascii=False))
        return
    table = Table(title=f"{mode} search in {kb.name}: {query}", show_lines=True)
    for column in ("#", "score", "document", "pages", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        pages = str(hit.page_start) if hit.page_start == hit.page_end else f"{hit.page_start}-{hit.page_end}"
        passage = mark(hit.text, hit.highlights, "[bold yellow]", "[/]", escape=escape)
        if hit.context_before or hit.context_after:
            passage = f"[dim]{hit.context_before[-200:]}[/]{passage}[dim]{hit.context_after[:200]}[/]"
        table.add_row(str(rank), f"{hit.score:.3f}", hit.filename, pages, passage)
    out.print(table)
    if not hits:
        out.print("no results")
