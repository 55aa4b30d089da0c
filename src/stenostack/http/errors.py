"""Every error leaves a server as OpenAI's ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stenostack.errors import APIError

log = logging.getLogger(__name__)

ExceptionHandler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def http_error_response(exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such path, wrong method) in OpenAI's error shape."""
    return error_response(
        APIError.with_status(
            exc.status_code, str(exc.detail), headers=dict(exc.headers or {}) or None
        )
    )


def exception_handlers(server: str) -> dict[Any, ExceptionHandler]:
    """Starlette exception handlers that answer every error in OpenAI's shape; ``server``
    names this server in the message of an unexpected error ("The router had an error")."""

    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return error_response(exc)

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_error_response(exc)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(APIError(f"The {server} had an error while processing the request."))

    return {APIError: on_api_error, HTTPException: on_http_error, Exception: on_unexpected}
