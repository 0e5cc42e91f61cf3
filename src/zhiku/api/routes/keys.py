"""API keys of the caller's tenant (admin scope): create (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from zhiku.api.auth import authorize
from zhiku.api.deps import AppState, app_state
from zhiku.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from zhiku.keys import Principal, create_api_key, list_api_keys, revoke_api_key

router = APIRouter(prefix="/api/v1/keys", tags=["API keys"])
State = Annotated[AppState, Depends(app_state)]
Admin = Annotated[Principal, Depends(authorize("admin", "write"))]


@router.post("", status_code=201)
def create(body: ApiKeyCreate, state: State, principal: Admin) -> ApiKeyCreated:
    """Create a key in the caller's tenant; `key` is in this response only."""
    row, secret = create_api_key(state.zhiku, principal.tenant_id, body.scope, body.name)
    return ApiKeyCreated(**ApiKeyOut.of(row).model_dump(), key=secret)


@router.get("")
def list_all(state: State, principal: Admin) -> list[ApiKeyOut]:
    """The tenant's keys (without secrets)."""
    return [ApiKeyOut.of(key) for key in list_api_keys(state.zhiku, principal.tenant_id)]


@router.delete("/{key_id}")
def revoke(key_id: str, state: State, principal: Admin) -> ApiKeyOut:
    """Revoke a key: it stops working at once on this server process, and within 10 s on any other one (other
    workers or hosts, which remember verified keys that long)."""
    row = revoke_api_key(state.zhiku, key_id, principal.tenant_id)
    state.keys.forget(row.id)
    return ApiKeyOut.of(row)
