"""`zhiku tags`: a knowledge base's auto-tag labels (set, show) and auto-tagging on demand; embedded, or through a
running server."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import find_server, open_zhiku, out
from zhiku.errors import InvalidInputError
from zhiku.knowledge.auto_tags import get_labels, run_auto_tags, set_labels
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.pipeline.auto_tags import Label, TagRun

tags_app = typer.Typer(
    help="Auto-tags: labels documents are tagged with zero-shot (at ingestion, or on demand).", no_args_is_help=True
)


def parse_label(text: str) -> Label:
    """``"finance: budgets, invoices and pay"`` → a label named ``finance`` with that description (a full-width
    colon works too; no colon: a name alone)."""
    name, _, description = text.replace("：", ":", 1).partition(":")
    if not name.strip():
        raise InvalidInputError(f"--label {text!r}: give NAME or 'NAME: what it means'", param="label")
    return Label(name.strip(), description.strip())


@tags_app.command("labels")
def labels_command(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Set the labels: 'NAME: what it means' (repeatable; replaces all labels)."),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove all labels (auto-tagging off).")] = False,
) -> None:
    """Show the knowledge base's auto-tag labels, or set them (then run `zhiku tags run` to tag existing documents;
    new ones are tagged as they are ingested)."""
    wanted = None if not label and not clear else [parse_label(text) for text in label or []]
    server = find_server()
    if server is not None:
        with server:
            kb_id = server.get_knowledge_base(kb_name)["id"]
            body = None if wanted is None else [{"name": w.name, "description": w.description} for w in wanted]
            shown = [Label(item["name"], item["description"]) for item in server.auto_tag_labels(kb_id, body)]
    else:
        with open_zhiku() as zhiku:
            kb = get_knowledge_base(zhiku, kb_name)
            shown = get_labels(zhiku, kb) if wanted is None else set_labels(zhiku, kb, wanted)
    if not shown:
        out.print(f"{kb_name} has no auto-tag labels (set some with --label 'NAME: what it means')", markup=False)
        return
    table = Table(title=f"auto-tag labels of {escape(kb_name)}")
    table.add_column("tag")
    table.add_column("what it means", overflow="fold")
    for item in shown:
        table.add_row(escape(item.name), escape(item.description))
    out.print(table)


@tags_app.command("run")
def run_command(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    min_confidence: Annotated[
        float | None,
        typer.Option("--min-confidence", min=0.0, max=1.0, help="Tag only at this confidence or above (0-1)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tag every ready document again with the labels (earlier auto-tags are replaced; tags people gave stay)."""
    server = find_server()
    if server is not None:
        with server:
            kb_id = server.get_knowledge_base(kb_name)["id"]
            answer = server.run_auto_tags(kb_id, min_confidence)
        done = TagRun(answer["documents"], answer["tagged"], dict(answer["by_label"]))
    else:
        with open_zhiku() as zhiku:
            done = run_auto_tags(zhiku, get_knowledge_base(zhiku, kb_name), min_confidence=min_confidence)
    if as_json:
        out.print_json(json.dumps({"documents": done.documents, "tagged": done.tagged, "by_label": done.by_label}))
        return
    counts = ", ".join(f"{name} {count}" for name, count in done.by_label.items())
    out.print(f"tagged {done.tagged} of {done.documents} documents" + (f": {counts}" if counts else ""), markup=False)
