"""uvicorn's httptools protocol, with the limits a server facing the internet needs.

uvicorn itself waits forever for a request's headers (a connection that never sends a byte
included), accepts headers of any size (httptools joins them piece by piece, so a huge one
freezes the event loop) and accepts connections until the process runs out of files. Here:

- headers must be complete within ``header_timeout_s`` of the connection's opening, or of a
  kept-alive connection's next byte, else the connection is closed;
- headers past ``max_header_bytes`` are answered 431 at once, before httptools sees them;
- past ``max_connections`` a new connection is answered 503 at once, so those already open
  keep being served;
- each request's app is wrapped in :class:`BodyTimeoutMiddleware` (408 for a stalled body).

A refusal is written, the sending side shut, and what the client still sends is read and
dropped for a moment before closing: closing on unread data would reset the connection and
could destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import math
import time
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from stenostack.errors import APIError, RequestHeadersTooLarge, ServiceUnavailable
from stenostack.http.body_timeout import BodyTimeoutMiddleware
from stenostack.http.connection_limits import ConnectionLimits, LimitedConfig

log = logging.getLogger(__name__)

# How long a refused connection is drained before it is closed, and how many may drain at
# once (each holds a file, out of the spare ones): past that, a refusal closes at once.
REFUSAL_LINGER_S = 1.0
MAX_LINGERING_REFUSALS = 64
# A flood of refused connections is logged once in this long, not once each.
REFUSAL_LOG_INTERVAL_S = 10.0
HEADERS_END = b"\r\n\r\n"


def error_response_bytes(error: APIError) -> bytes:
    """A whole HTTP/1.1 response carrying ``error``'s OpenAI body, closing the connection."""
    body = json.dumps(error.body()).encode()
    status = http.HTTPStatus(error.status_code)
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        **error.headers,
        "connection": "close",
    }
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return f"{head}\r\n".encode("latin-1") + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    _refusal_logged_at: ClassVar[float] = -math.inf
    _lingering: ClassVar[int] = 0  # refused connections draining, in this process

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = (
            config.connection_limits if isinstance(config, LimitedConfig) else ConnectionLimits()
        )
        self.app = BodyTimeoutMiddleware(self.app, self.limits.body_timeout_s)
        # Bytes of the current request's head seen so far; None while its body is read.
        self._head_bytes: int | None = 0
        self._head_tail = b""  # the last bytes seen, to find a head's end split across reads
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._lingers = False
        self._closing_later: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport
            self._log_refusal()
            self._refuse(
                ServiceUnavailable(
                    "The server has too many open connections; retry shortly.", retry_after_s=1
                )
            )
            return
        super().connection_made(transport)
        self._start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        if self._closing_later is not None:
            self._closing_later.cancel()
        if self._lingers:
            LimitedHttpToolsProtocol._lingering -= 1
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # drained, never parsed
        if self._head_bytes is not None:
            if self._head_deadline is None:  # a kept-alive connection's next request begins
                self._start_head_deadline()
            if not self._head_fits(data):
                self._stop_head_deadline()
                self._refuse(RequestHeadersTooLarge(self.limits.max_header_bytes))
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._stop_head_deadline()
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0  # what comes next is the next request's head
        self._head_tail = b""

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            # Answered before its body was read (a refusal): the rest may still trickle in,
            # which would hold the connection open, so it gets one body timeout to finish.
            self._close_later(self.limits.body_timeout_s)

    def handle_websocket_upgrade(self) -> None:
        self._stop_head_deadline()
        super().handle_websocket_upgrade()

    def _head_fits(self, data: bytes) -> bool:
        """Whether the head, with ``data``, stays within ``max_header_bytes``: either it ends
        within the room left, or all of ``data`` fits in it."""
        assert self._head_bytes is not None
        room = self.limits.max_header_bytes - self._head_bytes
        window = self._head_tail + data[: max(room, 0)]
        if HEADERS_END in window:
            return True
        if len(data) > room:
            return False
        self._head_bytes += len(data)
        self._head_tail = window[-(len(HEADERS_END) - 1) :]
        return True

    def _start_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(
            self.limits.header_timeout_s, self._head_too_slow
        )

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            log.debug("closed a connection whose request headers took too long")
            self.transport.close()

    def _log_refusal(self) -> None:
        now = time.monotonic()
        if now - LimitedHttpToolsProtocol._refusal_logged_at >= REFUSAL_LOG_INTERVAL_S:
            LimitedHttpToolsProtocol._refusal_logged_at = now
            log.warning(
                "refusing new connections: %d are open, the most allowed (--max-connections)",
                len(self.connections),
            )

    def _refuse(self, error: APIError) -> None:
        """Answer ``error``, shut the sending side, drain briefly, then close."""
        self._refused = True
        self.transport.write(error_response_bytes(error))
        if LimitedHttpToolsProtocol._lingering >= MAX_LINGERING_REFUSALS:
            self.transport.close()  # still sends the answer first
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        LimitedHttpToolsProtocol._lingering += 1
        self._lingers = True
        self._close_later(REFUSAL_LINGER_S)

    def _close_later(self, delay_s: float) -> None:
        if self._closing_later is None:
            self._closing_later = self.loop.call_later(delay_s, self.transport.close)
