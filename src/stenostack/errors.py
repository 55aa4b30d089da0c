"""Errors that reach API callers, each carrying its OpenAI error body.

Every layer (form parsing, audio decoding, model validation, the engine) raises these, so
the HTTP layer renders them in one place as ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

import math
from typing import Any

# While the models load, callers are told to come back after this long (loading takes
# seconds, and /ready says the same).
MODELS_LOADING_RETRY_S = 2


def retry_after(seconds: float, *, should_retry: bool = False) -> dict[str, str]:
    """The headers that tell a caller to come back in ``seconds`` (whole, at least 1);
    ``should_retry`` also tells the official SDKs to retry on their own."""
    headers = {"Retry-After": str(max(math.ceil(seconds), 1))}
    if should_retry:
        headers["x-should-retry"] = "true"
    return headers


class APIError(Exception):
    """An error with an HTTP status and the fields of OpenAI's error object."""

    status_code = 500
    error_type = "server_error"
    code: str | None = None  # a subclass may name its code once, here

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
        if code is not None:
            self.code = code
        self.headers = headers or {}

    @classmethod
    def with_status(
        cls,
        status_code: int,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> APIError:
        """An error for a status no subclass names (a framework's own refusal)."""
        error = cls(message, param=param, headers=headers)
        error.status_code = status_code
        error.error_type = "invalid_request_error" if status_code < 500 else "server_error"
        return error

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

    def __init__(self, message: str, *, retry_after_s: float = MODELS_LOADING_RETRY_S) -> None:
        super().__init__(message, code="service_unavailable", headers=retry_after(retry_after_s))


# A draining server is gone within seconds; the caller should go elsewhere, or come back to
# the same address once a replacement listens there.
DRAINING_RETRY_S = 1


class ServerDraining(APIError):
    """The server has been told to stop and takes no new work (503); a router retries the
    request on another backend, and any caller may retry after ``Retry-After``."""

    status_code = 503
    error_type = "server_error"
    code = "server_draining"

    def __init__(self) -> None:
        super().__init__(
            "This server is shutting down and takes no new work; retry, and it will be "
            "served elsewhere.",
            headers=retry_after(DRAINING_RETRY_S),
        )


class EngineOverloaded(APIError):
    """The model's queue is full; the caller (or a router) should retry later (429)."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(
            message, code="engine_overloaded", headers=retry_after(retry_after_s, should_retry=True)
        )


class ClientDisconnected(APIError):
    """The caller went away before the answer was ready; its work was cancelled."""

    status_code = 499  # nginx's "client closed request": only ever seen in metrics and logs
    error_type = "invalid_request_error"

    def __init__(self) -> None:
        super().__init__("The client closed the connection.", code="client_disconnected")


class RequestTimeout(APIError):
    """The client stopped sending its request body (408): its fault, never a backend's."""

    status_code = 408
    error_type = "invalid_request_error"
    code = "request_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body stopped arriving: nothing was received for {seconds:g} s."
        )


class InvalidApiKey(APIError):
    """No API key, or not one this server accepts (401), answered as OpenAI answers it."""

    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__(
            "Incorrect or missing API key: pass a key this server accepts as "
            "'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )


class RequestHeadersTooLarge(APIError):
    """The request line and headers together passed the configured limit (431)."""

    status_code = 431
    error_type = "invalid_request_error"
    code = "request_headers_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"The request's headers are too large: the limit is {limit_bytes} bytes in all."
        )
