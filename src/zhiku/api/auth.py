"""Who is calling: API keys from ``Authorization: Bearer``, scopes, and the rate limit of the route class.

Verified keys are remembered for :data:`CACHE_SECONDS` so a busy key costs no database read per request. A key
revoked through the API stops working at once on the process that revoked it (it is evicted here), and within
:data:`CACHE_SECONDS` on every other process (other ``--workers``, other hosts, ``zhiku keys revoke``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from zhiku.api.deps import AppState
from zhiku.errors import AuthenticationError, PermissionDeniedError
from zhiku.keys import Principal, hash_key, verify_api_key

CACHE_SECONDS = 10.0
DEV_PRINCIPAL = Principal("default", "admin")


class KeyCache:
    """Recently verified keys: hash -> (principal or None, expiry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal | None, float]] = {}
        self._revoked: set[str] = set()  # ids revoked here: a verification that raced the revocation stays out

    def get(self, key_hash: str) -> tuple[bool, Principal | None]:
        """(known, principal) for a hash seen within :data:`CACHE_SECONDS`."""
        with self._lock:
            entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key_hash: str, principal: Principal | None) -> None:
        """Remember a verification outcome."""
        with self._lock:
            if principal is not None and principal.key_id in self._revoked:
                principal = None
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_hash] = (principal, time.monotonic() + CACHE_SECONDS)

    def forget(self, key_id: str) -> None:
        """Drop the key with this id (just revoked), so its next request is checked against the database."""
        with self._lock:
            self._revoked.add(key_id)
            for key_hash in [h for h, (p, _) in self._entries.items() if p is not None and p.key_id == key_id]:
                del self._entries[key_hash]


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
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>' (create one with "
                                  "`zhiku keys create`)")  # fmt: skip
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
