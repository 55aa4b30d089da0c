"""Errors that reach API callers, each carrying its OpenAI error body.

Every layer (form parsing, audio decoding, model validation, the engine) raises these, so
the HTTP layer renders them in one place as ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error with an HTTP status and the fields of OpenAI's error object."""

    status_code = 500
    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    """The request is malformed or asks for something the model cannot do (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidAudio(InvalidRequest):
    """The uploaded file is not audio we can decode, or its audio is unusable (400)."""

    def __init__(self, message: str, *, code: str = "invalid_audio") -> None:
        super().__init__(message, param="file", code=code)


class ModelNotFound(APIError):
    """The requested model is not served here (404)."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, model: str, available: list[str]) -> None:
        super().__init__(
            f"The model '{model}' does not exist or is not served here. "
            f"Available models: {', '.join(available) or 'none'}.",
            param="model",
            code="model_not_found",
        )


class UploadTooLarge(APIError):
    """The upload is bigger than the configured limit (413)."""

    status_code = 413
    error_type = "invalid_request_error"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"The uploaded file is too large: the limit is {limit_bytes / 1_000_000:g} MB.",
            param="file",
            code="file_too_large",
        )


class ServiceUnavailable(APIError):
    """The server cannot take the request now; the caller may retry (503)."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(
            message, code="service_unavailable", headers={"Retry-After": str(retry_after_s)}
        )


class EngineOverloaded(APIError):
    """The model's queue is full; the caller (or a router) should retry later (429)."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(
            message,
            code="engine_overloaded",
            headers={"Retry-After": str(retry_after_s), "x-should-retry": "true"},
        )


class ClientDisconnected(APIError):
    """The caller went away before the answer was ready; its work was cancelled."""

    status_code = 499  # nginx's "client closed request": only ever seen in metrics and logs
    error_type = "invalid_request_error"

    def __init__(self) -> None:
        super().__init__("The client closed the connection.", code="client_disconnected")


class Unauthorized(APIError):
    """No API key, or not one this server accepts (401)."""

    status_code = 401
    error_type = "invalid_request_error"

    def __init__(self) -> None:
        super().__init__(
            "Incorrect or missing API key: pass one this router accepts as "
            "'Authorization: Bearer <key>'.",
            code="invalid_api_key",
        )


class NoHealthyBackend(APIError):
    """Backends serve the model, but none can take a request now (503)."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, model: str, retry_after_s: int) -> None:
        super().__init__(
            f"No healthy backend can serve model '{model}' right now; retry shortly.",
            code="no_healthy_backend",
            headers={"Retry-After": str(retry_after_s)},
        )


class BackendUnreachable(APIError):
    """Every backend tried failed before answering (502)."""

    status_code = 502
    error_type = "server_error"

    def __init__(self, model: str, attempts: int) -> None:
        super().__init__(
            f"No backend for model '{model}' could be reached ({attempts} tried).",
            code="backend_unreachable",
            headers={"Retry-After": "1"},
        )


class BackendTimeout(APIError):
    """A backend did not answer in time (504)."""

    status_code = 504
    error_type = "server_error"

    def __init__(self, what: str) -> None:
        super().__init__(f"The backend timed out: {what}.", code="backend_timeout")
