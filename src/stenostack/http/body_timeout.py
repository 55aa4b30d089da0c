"""A request body that stops arriving ends in 408, not in a connection held forever."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stenostack.errors import RequestTimeout
from stenostack.http.errors import error_response


class BodyTimeoutMiddleware:
    """While the body is incomplete, each ``receive()`` waits at most ``timeout_s`` and then
    raises :class:`RequestTimeout` in the app, which answers it (and records it) like any
    client error; a ``Content-Length`` larger than the body ends the same way.

    Once the body is whole, ``receive()`` only waits for the client to hang up, so it is left
    alone. After a timeout the response closes the connection: the rest of the body is never
    coming. An app that lets the error escape before answering is answered here.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_complete = False
        timed_out = False
        response_started = False

        async def receive_in_time() -> Message:
            nonlocal body_complete, timed_out
            if body_complete:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise RequestTimeout(self.timeout_s) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def send_closing_after_timeout(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if timed_out:
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_closing_after_timeout)
        except RequestTimeout as error:
            if response_started:
                raise
            await error_response(error)(scope, receive, send_closing_after_timeout)
