"""`zhiku dedup`: a knowledge base's near-duplicates (edited copies, re-saved versions, translations), as a report
or JSON, and optionally keeping one document per group."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from zhiku.cli.common import find_server, open_zhiku, out
from zhiku.config import get_settings
from zhiku.knowledge.bases import get_knowledge_base
from zhiku.knowledge.duplicates import MAX_GROUPS, check_options, find_duplicates, keep_one_per_group


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _json(value: Any) -> Any:
    """``value`` as the API's JSON has it (times as ISO 8601 text)."""
    return json.loads(json.dumps(value, default=_plain))


def dedup(
    kb_name: Annotated[str, typer.Option("--kb", help="Knowledge base name or id.")],
    chunks: Annotated[bool, typer.Option("--chunks", help="Groups of chunks (of different documents).")] = False,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Cosine from 0.5 to 1 (default: setting near_duplicate_threshold)."),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only pairs of this kind: copy, translation, similar.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups (and what --keep-one did) as JSON.")] = (
        False
    ),
    keep_one: Annotated[
        bool, typer.Option("--keep-one", help="Keep one document per group (oldest, then most chunks); delete others.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_GROUPS, help="Most groups shown.")] = 100,
) -> None:
    """Find groups of documents (or chunks) that say the same thing: edited copies, re-saved versions and
    translations (a Chinese and an English version of one text)."""
    level = "chunks" if chunks else "documents"
    if keep_one and chunks:
        raise typer.BadParameter("--keep-one deletes documents: use it without --chunks", param_hint="--keep-one")
    cut = check_options(level, threshold, kind, get_settings().near_duplicate_threshold)  # refused before anything
    server = find_server()
    resolved: dict[str, Any] | None = None
    if server is not None:
        with server:
            kb_id = server.get_knowledge_base(kb_name)["id"]
            found = server.duplicates(kb_id, level=level, threshold=threshold, kinds=kind, limit=limit)
            groups, cut = found["groups"], float(found["threshold"])
            if keep_one:
                body = {"threshold": threshold, "kinds": kind or None}
                resolved = server.resolve_duplicates(kb_id, {k: v for k, v in body.items() if v is not None})
    else:
        with open_zhiku() as zhiku:
            kb = get_knowledge_base(zhiku, kb_name)
            listed = find_duplicates(zhiku, kb, level=level, threshold=cut, kinds=kind, limit=limit)
            groups = _json([asdict(g) for g in listed])
            if keep_one:
                done = keep_one_per_group(zhiku, kb, threshold=cut, kinds=kind)
                resolved = _json({"kept": [asdict(m) for m in done.kept], "deleted": [asdict(m) for m in done.deleted]})
    if as_json:
        report: dict[str, Any] = {"level": level, "threshold": cut, "groups": groups}
        if resolved is not None:
            report["resolved"] = resolved
        out.print_json(json.dumps(report, ensure_ascii=False))
        return
    _print_groups(groups, level, cut)
    if resolved is not None:
        names = ", ".join(m["filename"] for m in resolved["deleted"]) or "nothing"
        out.print(f"kept {len(resolved['kept'])} documents, deleted {len(resolved['deleted'])}: {escape(names)}")


def _print_groups(groups: list[dict[str, Any]], level: str, threshold: float) -> None:
    if not groups:
        out.print(f"no near-duplicate {level} (threshold {threshold:.2f})")
        return
    for number, group in enumerate(groups, 1):
        table = Table(
            title=f"group {number}: {', '.join(group['kinds'])} (weakest pair {group['score']:.3f})",
            title_justify="left",
        )
        for column in ("", "file", "lang", "score", "chunks", "text"):
            table.add_column(column)
        for position, member in enumerate(group["members"]):
            where = f" #{member['ordinal']}" if member.get("ordinal") is not None else ""
            text = " ".join(member["text"].split())
            table.add_row(
                "keep" if position == group["keep"] and level == "documents" else "",
                escape(member["filename"] + where),
                member["language"],
                f"{member['score']:.3f}",
                str(member["chunk_count"]),
                escape(text[:80] + ("…" if len(text) > 80 else "")),
            )
        out.print(table)
    out.print(f"{len(groups)} groups of near-duplicate {level} (threshold {threshold:.2f})")
