"""People of the caller's tenant (admins only): invite, list, change roles, disable, reset passwords; and the audit
log of administrative actions."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator

from zhiku.accounts import create_account, list_accounts, reset_password, update_account
from zhiku.api.auth import authorize
from zhiku.api.deps import State
from zhiku.api.schemas import (
    AccountCreate,
    AccountCreated,
    AccountOut,
    AccountUpdate,
    AuditEntryOut,
    NewPassword,
    PasswordReset,
)
from zhiku.audit import read_audit_log
from zhiku.keys import Principal

router = APIRouter(prefix="/api/v1", tags=["accounts"])
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_only(value: object) -> object:
    """A date-time as the schema says (RFC 3339), not a number of seconds, which pydantic would also read."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be a date-time such as 2026-12-01T08:00:00Z")
    return value


Admin = Annotated[Principal, Depends(authorize("admin", "write"))]
AdminReading = Annotated[Principal, Depends(authorize("admin", "read"))]


@router.get("/accounts")
def list_all(state: State, principal: AdminReading) -> list[AccountOut]:
    """The tenant's accounts, by login."""
    return [AccountOut.of(row) for row in list_accounts(state.zhiku, principal.tenant_id)]


@router.post("/accounts", status_code=201)
def invite(body: AccountCreate, state: State, principal: Admin) -> AccountCreated:
    """Create an account in the caller's tenant; without a `password`, one is generated and returned this once
    (pass it to the person, who changes it after logging in)."""
    row, generated = create_account(
        state.zhiku, principal.tenant_id, body.login, body.role, body.password, created_by=principal.actor
    )
    return AccountCreated(**AccountOut.of(row).model_dump(), password=generated)


@router.patch("/accounts/{account_id}")
def update(account_id: str, body: AccountUpdate, state: State, principal: Admin) -> AccountOut:
    """Change a role, or disable an account (its sessions end and its keys stop working) or enable it again.
    Nobody changes their own role or disables themselves, and the last enabled admin stays one."""
    row = update_account(
        state.zhiku,
        account_id,
        tenant_id=principal.tenant_id,
        role=body.role,
        disabled=body.disabled,
        actor=principal.actor,
        actor_account=principal.account_id,
    )
    state.keys.forget_account(row.id)  # their keys' scope or validity changed: check them again at once
    return AccountOut.of(row)


@router.post("/accounts/{account_id}/password")
def reset(account_id: str, body: PasswordReset, state: State, principal: Admin) -> NewPassword:
    """Reset someone's password (generated unless given, returned this once); their sessions end."""
    row, password = reset_password(
        state.zhiku, account_id, tenant_id=principal.tenant_id, password=body.password, actor=principal.actor
    )
    return NewPassword(account=AccountOut.of(row), password=password)


@router.get("/audit")
def audit_log(
    state: State,
    principal: AdminReading,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Entries older than this id (next page).")] = None,
    action: Annotated[str | None, Query(max_length=50, description="Only this action, e.g. `key.create`.")] = None,
    since: Annotated[
        dt.datetime | None, BeforeValidator(_iso_only), Query(description="Only entries at or after this time.")
    ] = None,
) -> list[AuditEntryOut]:
    """The tenant's administrative actions, newest first: knowledge bases created and deleted, keys created and
    revoked, accounts created, changed, disabled, their passwords reset or changed."""
    with state.zhiku.db.session() as session:
        rows = read_audit_log(session, principal.tenant_id, limit=limit, before=before, action=action, since=since)
        return [AuditEntryOut.of(row) for row in rows]
