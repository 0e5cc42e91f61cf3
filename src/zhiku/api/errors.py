"""Errors as HTTP responses, in one place: the OpenAI error shape, so OpenAI clients show the message.

``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`` with the status of the
:class:`~zhiku.errors.ZhikuError` subclass; 429/503 carry ``Retry-After``.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from zhiku.errors import ZhikuError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses a client may retry; every other error says ``x-should-retry: false``."""


def error_response(
    status: int, message: str, *, code: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error response in the OpenAI shape. Errors that asking again cannot fix carry
    ``x-should-retry: false``, the header OpenAI's own SDKs obey (they would otherwise retry a 409 or a 501)."""
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param, "code": code}}
    if status not in RETRYABLE:
        headers = {**(headers or {}), "x-should-retry": "false"}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing" and param:
        return f"{param} is required", param
    if location and location[0] == "input":  # the union of accepted shapes makes pydantic's message obscure
        return "input must be a string, a list of strings, a token array or a list of token arrays", "input"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return (f"{param}: {message}{more}" if param else f"{message}{more}"), param


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this path (Starlette's 405 names only the first route's):
    the request's path asked of the router once per method."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def _not_json_message(request: Request, exc: RequestValidationError) -> str | None:
    """For a JSON route sent a body that is not declared as JSON (FastAPI then validates the raw bytes): say what
    to send instead."""
    if not isinstance(exc.body, bytes | bytearray) or not any(
        tuple(error.get("loc", ()))[:1] == ("body",) for error in exc.errors()
    ):
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    sent = repr(content_type) if content_type else "no Content-Type"
    return f"the request body must be JSON: send Content-Type: application/json, not {sent}"


def install_error_handlers(app: FastAPI) -> None:
    """Map zhiku errors, validation errors and HTTP errors to OpenAI-shaped responses."""

    @app.exception_handler(ZhikuError)
    async def _zhiku_error(_: Request, exc: ZhikuError) -> JSONResponse:
        headers = None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
        if exc.status_code == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        if exc.status_code >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return error_response(exc.status_code, exc.message, code=exc.code, param=exc.param, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        not_json = _not_json_message(request, exc)
        if not_json is not None:
            return error_response(415, not_json, code="unsupported_media_type")
        message, param = _validation_message(exc)
        return error_response(400, message, code="invalid_request", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers) if exc.headers else None
        message = str(exc.detail)
        if exc.status_code == 405:  # RFC 9110: Allow lists every method the resource supports
            allowed = _allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method} is not allowed on {request.url.path}; it supports {', '.join(allowed)}"
        return error_response(exc.status_code, message, code=code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal server error (logged on the server)", code="internal_error")
