"""The events a realtime session has for its client, sent in order and bounded in bytes.

A client that stops reading fills its socket, then this queue; past ``max_bytes`` the queue
takes nothing more and says so (``overflowed``), and the session closes the connection
instead of holding ever more events in memory.
"""

from __future__ import annotations

import asyncio
import json

from starlette.websockets import WebSocket, WebSocketDisconnect

from stenostack.api.realtime.events import Event

# The closing handshake with a client that may not be reading waits at most this long.
CLOSE_GRACE_S = 10.0
# What of a close reason fits in a close frame (123 bytes), with room for any UTF-8.
MAX_CLOSE_REASON_CHARS = 120


async def close_with_error(websocket: WebSocket, error: Event, close_code: int) -> None:
    """Say why in an error event, then close with ``close_code`` and the error's message; a
    client that is gone, or reads nothing, gets no more than ``CLOSE_GRACE_S``."""
    reason = str(error["error"]["message"])[:MAX_CLOSE_REASON_CHARS]
    try:
        async with asyncio.timeout(CLOSE_GRACE_S):
            await websocket.send_text(json.dumps(error))
            await websocket.close(code=close_code, reason=reason)
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        pass  # the client is gone or stuck: the server lets go of the connection anyway


class Outbox:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.overflowed = asyncio.Event()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._bytes = 0  # queued, and being sent

    def put(self, event: Event) -> None:
        """Queue ``event``, or drop it and mark the outbox overflowed."""
        # ASCII-only JSON: text a client sent (a lone surrogate) goes back escaped, so no
        # event can fail to encode and silently stop the writer.
        text = json.dumps(event)
        if self.overflowed.is_set() or self._bytes + len(text) > self.max_bytes:
            self.overflowed.set()
            return
        self._bytes += len(text)
        self._queue.put_nowait(text)

    def discard(self) -> None:
        """Forget every queued event (the session is closing)."""
        while not self._queue.empty():
            self._bytes -= len(self._queue.get_nowait())

    async def send_all(self, websocket: WebSocket) -> None:
        """Send events as they come, in order; ends only by cancellation or a failed send."""
        while True:
            text = await self._queue.get()
            try:
                await websocket.send_text(text)
            finally:
                self._bytes -= len(text)
