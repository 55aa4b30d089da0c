"""An ``x-request-id`` on every response: the caller's own, or a fresh one."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
# A caller's id longer than this is replaced: it is echoed into every log line and upstream.
MAX_REQUEST_ID_BYTES = 128
# The request being served by the current task, for log lines ("-" outside requests).
current_request_id: ContextVar[str] = ContextVar("request_id", default="-")


def request_id(scope: Scope) -> str:
    """The id :class:`RequestIdMiddleware` gave this request ("" outside the middleware)."""
    return str(scope.get("state", {}).get("request_id", ""))


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"")
        chosen = given if 0 < len(given) <= MAX_REQUEST_ID_BYTES else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = chosen.decode("latin-1")
        current_request_id.set(chosen.decode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (HEADER, chosen)]
            await send(message)

        await self.app(scope, receive, send_with_id)
