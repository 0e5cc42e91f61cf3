"""`zhiku users`: the people who log in to the web UI — create (the first admin too), list, change roles, disable
and enable, reset passwords. Run on the server's machine (it writes the database directly, as `zhiku keys` does)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from zhiku.accounts import ROLES, create_account, list_accounts, reset_password, update_account
from zhiku.cli.common import err, out
from zhiku.config import get_settings
from zhiku.core import Zhiku

users_app = typer.Typer(help="Create and manage the accounts people log in with.", no_args_is_help=True)

Login = Annotated[str, typer.Argument(help="The login: a user name or e-mail address (or the account's id).")]


def _ask_password() -> str | None:
    """A password typed twice (not echoed), or ``None`` (generate one) when nothing is typed."""
    typed = typer.prompt("Password (empty: generate one)", default="", hide_input=True, show_default=False)
    if not typed:
        return None
    if typer.prompt("Again", hide_input=True) != typed:
        err.print("[red]error:[/] the two passwords differ")
        raise typer.Exit(2)
    return str(typed)


@users_app.command("create")
def users_create(
    login: Login,
    role: Annotated[str, typer.Option("--role", help=f"{', '.join(ROLES)}.")] = "reader",
    admin: Annotated[bool, typer.Option("--admin", help="Same as --role admin (e.g. the first admin).")] = False,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the person belongs to.")] = "default",
    ask: Annotated[bool, typer.Option("--password", help="Type the password instead of generating one.")] = False,
) -> None:
    """Create an account; prints the generated password (shown once) unless --password asks for one."""
    password = _ask_password() if ask else None
    with Zhiku(get_settings()) as zhiku:
        row, generated = create_account(zhiku, tenant, login, "admin" if admin else role, password)
    if generated is not None:
        typer.echo(generated)
    err.print(
        f"created account {row.login!r} ({row.role}, tenant {row.tenant_id}, id {row.id[:12]})"
        + ("; the password above is shown only now" if generated else "")
    )


@users_app.command("list")
def users_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's accounts.")] = None,
) -> None:
    """List accounts."""
    with Zhiku(get_settings()) as zhiku:
        rows = list_accounts(zhiku, tenant)
    table = Table(title="accounts")
    for column in ("id", "login", "tenant", "role", "status", "created", "last login"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.id[:12],
            row.login,
            row.tenant_id,
            row.role,
            "disabled" if row.disabled_at else "enabled",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.last_login_at:%Y-%m-%d %H:%M}" if row.last_login_at else "",
        )
    out.print(table)


@users_app.command("set-role")
def users_set_role(login: Login, role: Annotated[str, typer.Argument(help=f"{', '.join(ROLES)}.")]) -> None:
    """Change an account's role."""
    with Zhiku(get_settings()) as zhiku:
        row = update_account(zhiku, login, role=role)
    out.print(f"{row.login} is now {row.role}")


@users_app.command("disable")
def users_disable(login: Login) -> None:
    """Disable an account: its sessions end and its API keys stop working until it is enabled again."""
    with Zhiku(get_settings()) as zhiku:
        row = update_account(zhiku, login, disabled=True)
    out.print(f"{row.login} is disabled")


@users_app.command("enable")
def users_enable(login: Login) -> None:
    """Enable a disabled account."""
    with Zhiku(get_settings()) as zhiku:
        row = update_account(zhiku, login, disabled=False)
    out.print(f"{row.login} is enabled")


@users_app.command("reset-password")
def users_reset_password(
    login: Login,
    ask: Annotated[bool, typer.Option("--password", help="Type the new password instead of generating one.")] = False,
) -> None:
    """Set a new password (printed once when generated); the account's sessions end."""
    password = _ask_password() if ask else None
    with Zhiku(get_settings()) as zhiku:
        row, new = reset_password(zhiku, login, password=password)
    if password is None:
        typer.echo(new)
    err.print(f"new password set for {row.login}; its sessions have ended")
