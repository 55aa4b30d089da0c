"""Errors only the router gives: callers over their key's limits, and backends that cannot
be reached or do not answer."""

from __future__ import annotations

from stenostack.errors import APIError, retry_after

# After every backend tried failed to connect, come back this soon: the next health round
# or a restarted pod may already have brought one back.
UNREACHABLE_RETRY_S = 1


class RateLimited(APIError):
    """A caller's key is over one of its limits (429)."""

    status_code, error_type, code = 429, "rate_limit_error", "rate_limit_exceeded"

    def __init__(self, what: str, retry_after_s: float) -> None:
        headers = retry_after(retry_after_s, should_retry=True)
        wait = headers["Retry-After"]
        super().__init__(
            f"Rate limit reached for this API key: {what}. Retry after {wait} s.", headers=headers
        )


class NoHealthyBackend(APIError):
    """Backends serve the model, but none can take a request now (503)."""

    status_code, error_type, code = 503, "server_error", "no_healthy_backend"

    def __init__(self, model: str, retry_after_s: float) -> None:
        message = f"No healthy backend can serve model '{model}' right now; retry shortly."
        super().__init__(message, headers=retry_after(retry_after_s))


class BackendUnreachable(APIError):
    """Every backend tried failed before answering (502)."""

    status_code, error_type, code = 502, "server_error", "backend_unreachable"

    def __init__(self, model: str, attempts: int) -> None:
        message = f"No backend for model '{model}' could be reached ({attempts} tried)."
        super().__init__(message, headers=retry_after(UNREACHABLE_RETRY_S))


class BackendUnresponsive(APIError):
    """The backend stopped answering while it had the request, which could not be sent
    to another one (502)."""

    status_code, error_type, code = 502, "server_error", "backend_unresponsive"

    def __init__(self) -> None:
        super().__init__(
            "The backend handling this request stopped responding, and the request could not "
            "be sent to another backend; retry it.",
            headers=retry_after(UNREACHABLE_RETRY_S),
        )


class BackendTimeout(APIError):
    """A backend did not answer in time (504)."""

    status_code, error_type, code = 504, "server_error", "backend_timeout"

    def __init__(self, what: str) -> None:
        super().__init__(f"The backend timed out: {what}.")
