"""`zhiku keys`: create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from zhiku.cli.common import err, out
from zhiku.config import get_settings
from zhiku.core import Zhiku
from zhiku.keys import create_api_key, list_api_keys, revoke_api_key

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option("--scope", help="read, write or admin (each includes those before).")] = "read",
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key acts for.")] = "default",
    name: Annotated[str, typer.Option("--name", help="A label to tell keys apart.")] = "",
) -> None:
    """Create an API key and print it (it is stored hashed and cannot be shown again)."""
    with Zhiku(get_settings()) as zhiku:
        row, secret = create_api_key(zhiku, tenant, scope, name)
    typer.echo(secret)
    err.print(f"created key {row.id} ({scope}, tenant {tenant}); store it now, it is not shown again")


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None) -> None:
    """List API keys (never their secrets)."""
    with Zhiku(get_settings()) as zhiku:
        rows = list_api_keys(zhiku, tenant)
    table = Table(title="API keys")
    for column in ("id", "prefix", "tenant", "scope", "owner", "name", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")  # a narrow terminal wraps a name, never cuts it
    for row in rows:
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else ""
        revoked = f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else ""
        table.add_row(
            row.id[:12],
            row.prefix + "…",
            row.tenant_id,
            str(row.scopes[0]),
            f"account {row.account_id[:12]}" if row.account_id else "tenant",
            row.name,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            used,
            revoked,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (or a unique prefix).")]) -> None:
    """Revoke an API key."""
    with Zhiku(get_settings()) as zhiku:
        row = revoke_api_key(zhiku, key_id)
    out.print(f"revoked key {row.id} ({row.prefix}…)")
