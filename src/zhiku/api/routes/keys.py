"""API keys: a person creates, lists and revokes their own (from a login session); a tenant's admins see and revoke
all of the tenant's, and create the tenant's own keys (owned by nobody)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from zhiku.api.auth import authorize
from zhiku.api.deps import AppState, app_state
from zhiku.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from zhiku.errors import PermissionDeniedError
from zhiku.keys import Principal, create_api_key, list_api_keys, revoke_api_key

router = APIRouter(prefix="/api/v1/keys", tags=["API keys"])
State = Annotated[AppState, Depends(app_state)]
Caller = Annotated[Principal, Depends(authorize("read", "write"))]
Reading = Annotated[Principal, Depends(authorize("read", "read"))]


def _person(principal: Principal) -> str | None:
    """The account of a login session (not of a person's key: keys do not make keys unless they are admin)."""
    return principal.account_id if principal.key_id is None else None


def _require_admin_or_person(principal: Principal) -> None:
    if not principal.allows("admin") and _person(principal) is None:
        raise PermissionDeniedError("only an admin key, or a person logged in to the web UI, manages API keys")


@router.post("", status_code=201)
def create(body: ApiKeyCreate, state: State, principal: Caller) -> ApiKeyCreated:
    """Create a key; `key` is in this response only. Logged in, it is yours (at most your role's scope, and it stops
    working while your account is disabled); `owner: "tenant"` (admins) makes a key of the tenant instead, as an
    admin API key always does."""
    _require_admin_or_person(principal)
    person = _person(principal)
    if body.owner == "tenant" or person is None:
        if not principal.allows("admin"):
            raise PermissionDeniedError("only admins create the tenant's keys; leave out 'owner' for your own")
        person = None
    elif not principal.allows(body.scope):
        raise PermissionDeniedError(f"your role allows keys of scope up to {principal.scope!r}", param="scope")
    row, secret = create_api_key(
        state.zhiku, principal.tenant_id, body.scope, body.name, account_id=person, created_by=principal.actor
    )
    return ApiKeyCreated(**ApiKeyOut.of(row).model_dump(), key=secret)


@router.get("")
def list_all(
    state: State,
    principal: Reading,
    mine: Annotated[bool, Query(description="Only the keys of the logged-in person (admins see all otherwise).")] = (
        False
    ),
) -> list[ApiKeyOut]:
    """Keys without their secrets: a person's own, or (admins) all of the tenant's."""
    _require_admin_or_person(principal)
    person = _person(principal)
    if not principal.allows("admin") or mine:
        if person is None:
            return []
        return [ApiKeyOut.of(key) for key in list_api_keys(state.zhiku, principal.tenant_id, account_id=person)]
    return [ApiKeyOut.of(key) for key in list_api_keys(state.zhiku, principal.tenant_id)]


@router.delete("/{key_id}")
def revoke(key_id: str, state: State, principal: Caller) -> ApiKeyOut:
    """Revoke a key (your own; admins: any of the tenant's). It stops working at once on this server process, and
    within 10 s on any other one (other workers or hosts, which remember verified keys that long)."""
    _require_admin_or_person(principal)
    owner = None if principal.allows("admin") else _person(principal)
    row = revoke_api_key(state.zhiku, key_id, principal.tenant_id, account_id=owner, revoked_by=principal.actor)
    state.keys.forget(row.id)
    return ApiKeyOut.of(row)
