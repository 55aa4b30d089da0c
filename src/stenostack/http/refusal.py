"""Refusing a request, or a WebSocket handshake, with an OpenAI error before any app code runs.

A refused WebSocket handshake is answered with a plain HTTP response (the ASGI
``websocket.http.response`` extension, which uvicorn supports), so clients see the status
and the error body exactly as for any other request; the official SDK raises
``websockets.exceptions.InvalidStatus`` carrying both. A server without the extension can
only close the handshake, which clients see as a bare 403.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from stenostack.errors import APIError
from stenostack.http.errors import error_response

DENIAL_EXTENSION = "websocket.http.response"
CLOSE_POLICY_VIOLATION = 1008
MAX_CLOSE_REASON_BYTES = 123  # what fits in a close frame


async def refuse(scope: Scope, receive: Receive, send: Send, error: APIError) -> None:
    """Answer with ``error``: an HTTP request, or a WebSocket handshake not yet accepted."""
    if scope["type"] == "websocket" and DENIAL_EXTENSION not in scope.get("extensions", {}):
        reason = error.message.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": reason})
        return
    await error_response(error)(scope, receive, send)
