"""`zhiku topics`: a knowledge base's documents in clusters named by their distinctive terms
(:mod:`zhiku.knowledge.topics`), through a running server when there is one."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import find_server, open_zhiku, out
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.topics import MAX_CLUSTERS, MIN_CLUSTERS, check_clusters, topic_map

SHOWN_DOCUMENTS = 3
"""Document names listed per cluster in the table."""


def topics_command(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    clusters: Annotated[
        int | None,
        typer.Option(
            "--clusters",
            "-k",
            help=f"Number of clusters ({MIN_CLUSTERS}-{MAX_CLUSTERS}); chosen automatically when absent.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole map as JSON instead of a table.")] = False,
) -> None:
    """Cluster a knowledge base's documents into topics, each named by a few distinctive terms."""
    check_clusters(clusters)
    server = find_server()
    if server is not None:
        with server:
            kb_id = server.get_knowledge_base(kb_name)["id"]
            found: dict[str, Any] = server.topics(kb_id, clusters)
    else:
        with open_zhiku() as zhiku:
            kb = get_knowledge_base(zhiku, kb_name)
            found = dataclasses.asdict(topic_map(zhiku, kb, clusters=clusters))
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False))
        return
    names = {d["id"]: d["title"] or d["filename"] for d in found["documents"]}
    how = "chosen automatically" if found["automatic"] else "as asked"
    table = Table(title=f"{len(found['clusters'])} topics ({how}) of {len(found['documents'])} documents")
    table.add_column("#", justify="right")
    table.add_column("topic")
    table.add_column("documents", justify="right")
    table.add_column("for example")
    for cluster in found["clusters"]:
        shown = [names[i] for i in cluster["document_ids"][:SHOWN_DOCUMENTS]]
        more = cluster["size"] - len(shown)
        table.add_row(
            str(cluster["id"] + 1),
            escape(cluster["name"]),
            str(cluster["size"]),
            escape(", ".join(shown)) + (f" (+{more})" if more > 0 else ""),
        )
    out.print(table)
