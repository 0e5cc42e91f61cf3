"""Who is calling: API keys from ``Authorization: Bearer``, scopes, and the rate limit of the route class.

Verified keys are remembered for :data:`~zhiku.api.keycache.CACHE_SECONDS` so a busy key costs no database read
per request. A key revoked through the API stops working at once on the process that revoked it (it is evicted
here), and within that time on every other process (other ``--workers``, other hosts, ``zhiku keys revoke``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from zhiku.api.deps import AppState
from zhiku.errors import AuthenticationError, PermissionDeniedError
from zhiku.keys import Principal, hash_key, verify_api_key

DEV_PRINCIPAL = Principal("default", "admin")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request, state: AppState) -> Principal:
    """The request's principal, or :class:`AuthenticationError`."""
    if state.settings.auth == "off":
        return DEV_PRINCIPAL
    token = _bearer(request)
    if token is None:
        raise AuthenticationError(
            "missing API key: send 'Authorization: Bearer <key>' (create one with `zhiku keys create`)"
        )
    admin = state.settings.admin_api_key
    if admin is not None and secrets.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return Principal("default", "admin", "bootstrap")
    key_hash = hash_key(token)
    known, principal = state.keys.get(key_hash)
    if not known:
        principal = await run_in_threadpool(verify_api_key, state.zhiku, token)
        state.keys.put(key_hash, principal)
    if principal is None:
        raise AuthenticationError("invalid or revoked API key")
    return principal


def authorize(scope: str, route_class: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate, require ``scope``, and count the request against its rate limit."""

    async def dependency(request: Request) -> Principal:
        state: AppState = request.app.state.zhiku
        principal = await authenticate(request, state)
        if not principal.allows(scope):
            raise PermissionDeniedError(f"this API key has scope {principal.scope!r}; this needs {scope!r}")
        identity = principal.key_id or (request.client.host if request.client else "local")
        state.limiter.hit(route_class, f"{principal.tenant_id}:{identity}")
        return principal

    return dependency


Reader = Annotated[Principal, Depends(authorize("read", "read"))]
"""A route parameter: the caller, who needs the read scope (rate class ``read``)."""
Writer = Annotated[Principal, Depends(authorize("write", "write"))]
"""A route parameter: the caller, who needs the write scope (rate class ``write``)."""
