"""A backend's response passed on to the client as it arrives, server-sent events included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from stenostack.router.errors import BackendTimeout, BackendUnresponsive
from stenostack.router.headers import client_response_headers

log = logging.getLogger(__name__)

# The status the response's end is recorded with when the client left before the end.
CLIENT_LEFT = 499


class UpstreamResponse(StreamingResponse):
    """Streams ``upstream`` to the client; closing it closes upstream (which cancels an
    engine's work). ``on_end`` is told the status once the response is over: the backend's,
    or 499 if the client did not get the whole body.

    If the backend stops responding (``lost`` is set) or stays idle too long, the response
    is *cut off*: part of it has reached the client, so no other backend can take over, and
    its end is never sent, so the server closes the connection mid-body and the client
    knows the answer is incomplete instead of taking a truncated one for whole."""

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        idle_s: float,
        on_end: Callable[[int], None],
        lost: asyncio.Event,
    ) -> None:
        self._upstream = upstream
        self._idle_s = idle_s
        self._on_end = on_end
        self._lost = lost
        self._cut_off_status: int | None = None  # why the response was cut off, if it was
        super().__init__(self._pieces(), status_code=upstream.status)
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in client_response_headers(upstream).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_unless_cut_off(message: Message) -> None:
            ending = message["type"] == "http.response.body" and not message.get("more_body")
            if not (ending and self._cut_off_status):
                await send(message)

        status = CLIENT_LEFT  # unless the whole upstream body reached the client
        try:
            await super().__call__(scope, receive, send_unless_cut_off)
            if self._cut_off_status:
                status = self._cut_off_status
            elif self._upstream.content.at_eof():
                status = self.status_code
        finally:
            self._upstream.close()
            self._on_end(status)

    async def _pieces(self) -> AsyncIterator[bytes]:
        lost = asyncio.ensure_future(self._lost.wait())
        reading: asyncio.Future[bytes] | None = None
        try:
            while True:
                reading = asyncio.ensure_future(self._upstream.content.readany())
                done, _ = await asyncio.wait(
                    {reading, lost}, timeout=self._idle_s, return_when=asyncio.FIRST_COMPLETED
                )
                if lost in done:
                    log.warning("backend stopped responding mid-response; cutting it off")
                    self._cut_off_status = BackendUnresponsive.status_code
                    return
                if not done:
                    log.warning("backend response idle for %.0f s; cutting it off", self._idle_s)
                    self._cut_off_status = BackendTimeout.status_code
                    return
                chunk = reading.result()
                if not chunk:
                    return
                yield chunk
        finally:
            lost.cancel()
            if reading is not None:
                reading.cancel()  # the client left, or the backend is lost or idle
