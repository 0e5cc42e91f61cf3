"""Logging in and out of the web UI: a session in an ``HttpOnly`` cookie, its CSRF token, a person's own password.

Programs use API keys instead (``Authorization: Bearer``); every other route accepts either (:mod:`zhiku.api.auth`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from zhiku.accounts import change_own_password, log_in, log_out
from zhiku.api.auth import SESSION_COOKIE, Reader, session_from_cookie
from zhiku.api.deps import State
from zhiku.api.schemas import AccountOut, LoginRequest, PasswordChange, SessionOut
from zhiku.errors import AuthenticationError, PermissionDeniedError
from zhiku.keys import hash_key

router = APIRouter(prefix="/api/v1/auth", tags=["login"])


def _address(request: Request) -> str:
    return request.client.host if request.client else "local"


@router.post("/login")
async def login(body: LoginRequest, request: Request, response: Response, state: State) -> SessionOut:
    """Log in with a login name (or e-mail) and password: sets the session cookie (`HttpOnly`, `SameSite=Strict`,
    `Secure` over HTTPS) and returns the CSRF token that writes made with it must send as `X-CSRF-Token`.
    Attempts are rate-limited per login and address, and per login from all addresses; a wrong login and a wrong
    password get the same answer."""
    address = _address(request)
    who = hash_key(body.login.strip().casefold())[:32]  # any text the caller sent, as a fixed-size limiter key
    state.limiter.hit("login", f"{who}:{address}")
    state.limiter.hit("login_account", who)
    token, info = await run_in_threadpool(
        log_in, state.zhiku, body.login, body.password, address=address, hours=state.settings.session_hours
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(state.settings.session_hours * 3600),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return SessionOut(
        auth=state.settings.auth, account=AccountOut.of(info.account), csrf_token=info.csrf_token,
        expires_at=info.expires_at,
    )  # fmt: skip


@router.post("/logout", status_code=204)
async def logout(request: Request, state: State) -> Response:
    """End this browser's session (on every server process at once) and clear its cookie. Needs the session's
    CSRF token like any write; a session that already ended is fine."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            await session_from_cookie(request, state, cookie)
        except AuthenticationError:
            pass  # ended already: only the cookie is left to clear
        else:
            await run_in_threadpool(log_out, state.zhiku, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/session")
async def current(request: Request, state: State) -> SessionOut:
    """Who is logged in and the CSRF token for writes (401 when nobody is). With `auth=off` (development) there
    is no account: every request acts as an admin."""
    if state.settings.auth == "off":
        return SessionOut(auth="off", account=None, csrf_token="", expires_at=None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise AuthenticationError("not logged in")
    info = await session_from_cookie(request, state, cookie)
    return SessionOut(
        auth="on", account=AccountOut.of(info.account), csrf_token=info.csrf_token, expires_at=info.expires_at
    )


@router.post("/password", status_code=204)
async def change_password(body: PasswordChange, request: Request, state: State, principal: Reader) -> Response:
    """Change your own password (the current one is asked again); your other sessions end, this one stays."""
    if principal.account_id is None or principal.key_id is not None:
        raise PermissionDeniedError("only a logged-in person changes their password (an API key has none)")
    state.limiter.hit("login_account", hash_key(principal.account_id)[:32])  # guesses of the current one count
    await run_in_threadpool(
        change_own_password,
        state.zhiku,
        principal.account_id,
        body.current_password,
        body.new_password,
        request.cookies.get(SESSION_COOKIE),
    )
    return Response(status_code=204)
