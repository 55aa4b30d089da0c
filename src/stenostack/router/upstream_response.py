"""A backend's response passed on to the client as it arrives, server-sent events included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from stenostack.router.headers import client_response_headers

log = logging.getLogger(__name__)

# The status the response's end is recorded with when the client left before the end.
CLIENT_LEFT = 499


class UpstreamResponse(StreamingResponse):
    """Streams ``upstream`` to the client; closing it closes upstream (which cancels an
    engine's work). ``on_end`` is told the status once the response is over: the backend's,
    or 499 if the client did not get the whole body."""

    def __init__(
        self, upstream: aiohttp.ClientResponse, idle_s: float, on_end: Callable[[int], None]
    ) -> None:
        self._upstream = upstream
        self._idle_s = idle_s
        self._on_end = on_end
        super().__init__(self._pieces(), status_code=upstream.status)
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in client_response_headers(upstream).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        passed_through = False  # the whole upstream body reached the client
        try:
            await super().__call__(scope, receive, send)
            passed_through = self._upstream.content.at_eof()
        finally:
            self._upstream.close()
            self._on_end(self.status_code if passed_through else CLIENT_LEFT)

    async def _pieces(self) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = await asyncio.wait_for(self._upstream.content.readany(), self._idle_s)
            except TimeoutError:
                log.warning("backend response idle for %.0f s; closing it", self._idle_s)
                return
            if not chunk:
                return
            yield chunk
