"""Who is calling: an API key from ``Authorization: Bearer``, or a person's login session from its cookie (whose
writes must carry the session's CSRF token); scopes, and the rate limit of the route class.

Verified keys are remembered for :data:`~zhiku.api.keycache.CACHE_SECONDS` so a busy key costs no database read
per request. A key revoked through the API stops working at once on the process that revoked it (it is evicted
here), and within that time on every other process (other ``--workers``, other hosts, ``zhiku keys revoke``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from zhiku.accounts import SessionInfo, session_of
from zhiku.api.deps import AppState, caller_identity
from zhiku.errors import AuthenticationError, PermissionDeniedError
from zhiku.keys import ROLE_SCOPES, Principal, hash_key, verify_api_key

DEV_PRINCIPAL = Principal("default", "admin")
SESSION_COOKIE = "zhiku_session"
"""The login session's cookie: ``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict``, ``Secure`` over
TLS."""
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfError(PermissionDeniedError):
    """A write made with the session cookie lacks the session's CSRF token."""

    code = "csrf_failed"


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
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return (await session_from_cookie(request, state, cookie)).principal
        raise AuthenticationError(  # "missing API key" first: clients (zhiku's CLI) recognise it
            "missing API key: send 'Authorization: Bearer <key>' (create one with `zhiku keys create`), "
            "or log in to the web UI"
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


async def session_from_cookie(request: Request, state: AppState, cookie: str) -> SessionInfo:
    """The live session of the request's cookie, its CSRF token checked on writes; kept on ``request.state``."""
    info = await run_in_threadpool(session_of, state.zhiku, cookie)
    if info is None:
        raise AuthenticationError("your session has ended (logged out, expired, or the account was disabled); log in")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent.encode("utf-8", "surrogateescape"), info.csrf_token.encode()):
            raise CsrfError(
                "a change made with the login cookie needs the header 'X-CSRF-Token' with the token of "
                "GET /api/v1/auth/session (the web UI sends it; programs use an API key instead)"
            )
    request.state.session = info
    return info


def authorize(scope: str, route_class: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate, require ``scope``, and count the request against its rate limit."""

    async def dependency(request: Request) -> Principal:
        state: AppState = request.app.state.zhiku
        principal = await authenticate(request, state)
        if not principal.allows(scope):
            if principal.key_id is None and principal.account_id is not None:  # a person, in roles' words
                roles = {scope: role for role, scope in ROLE_SCOPES.items()}
                raise PermissionDeniedError(
                    f"your role is {roles[principal.scope]!r}; this needs {roles[scope]!r} (ask an admin of your team)"
                )
            raise PermissionDeniedError(f"this API key has scope {principal.scope!r}; this needs {scope!r}")
        state.limiter.hit(route_class, caller_identity(request, principal))
        return principal

    dependency.zhiku_scope = scope  # type: ignore[attr-defined]  # read by document_scopes
    return dependency


def document_scopes(routes: list[BaseRoute]) -> None:
    """Say in each API route's OpenAPI operation (``x-zhiku-scope``) which scope or role it needs; a test calls
    every route so marked with sessions and keys of each role."""
    for route in routes:
        if isinstance(route, APIRoute):
            scopes = [getattr(d.call, "zhiku_scope", None) for d in _dependencies(route.dependant)]
            needed = [scope for scope in scopes if scope is not None]
            if needed:
                route.openapi_extra = {**(route.openapi_extra or {}), "x-zhiku-scope": needed[0]}


def _dependencies(dependant: Dependant) -> list[Dependant]:
    found = []
    for dependency in dependant.dependencies:
        found += [dependency, *_dependencies(dependency)]
    return found


Reader = Annotated[Principal, Depends(authorize("read", "read"))]
"""A route parameter: the caller, who needs the read scope (rate class ``read``)."""
Writer = Annotated[Principal, Depends(authorize("write", "write"))]
"""A route parameter: the caller, who needs the write scope (rate class ``write``)."""
