"""Errors only the router gives: callers without a valid key or over their limits, and
backends that cannot be reached or do not answer."""

from __future__ import annotations

from stenostack.errors import APIError, retry_after

# After every backend tried failed to connect, come back this soon: the next health round
# or a restarted pod may already have brought one back.
UNREACHABLE_RETRY_S = 1


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


class RateLimited(APIError):
    """A caller's key is over one of its limits (429)."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, what: str, retry_after_s: float) -> None:
        headers = retry_after(retry_after_s, should_retry=True)
        super().__init__(
            f"Rate limit reached for this API key: {what}. Retry after {headers['Retry-After']} s.",
            code="rate_limit_exceeded",
            headers=headers,
        )


class NoHealthyBackend(APIError):
    """Backends serve the model, but none can take a request now (503)."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, model: str, retry_after_s: float) -> None:
        super().__init__(
            f"No healthy backend can serve model '{model}' right now; retry shortly.",
            code="no_healthy_backend",
            headers=retry_after(retry_after_s),
        )


class BackendUnreachable(APIError):
    """Every backend tried failed before answering (502)."""

    status_code = 502
    error_type = "server_error"

    def __init__(self, model: str, attempts: int) -> None:
        super().__init__(
            f"No backend for model '{model}' could be reached ({attempts} tried).",
            code="backend_unreachable",
            headers=retry_after(UNREACHABLE_RETRY_S),
        )


class BackendTimeout(APIError):
    """A backend did not answer in time (504)."""

    status_code = 504
    error_type = "server_error"

    def __init__(self, what: str) -> None:
        super().__init__(f"The backend timed out: {what}.", code="backend_timeout")
