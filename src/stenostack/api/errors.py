"""The engine's error handlers: the shared ones, and FastAPI's validation errors."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import Response

from stenostack.errors import APIError
from stenostack.http.errors import ExceptionHandler, error_response, exception_handlers


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    message = first.get("msg", "Invalid request.")
    return error_response(APIError.with_status(400, message, param=".".join(location) or None))


def engine_exception_handlers() -> dict[Any, ExceptionHandler]:
    return {**exception_handlers("server"), RequestValidationError: _on_validation_error}
