"""The race between a request's work and its client hanging up.

A server learns that a client left only by reading ``http.disconnect`` from the request's
``receive``, and only once the body is read; until then the body's reader sees it. So the
watch starts when the body is complete, and whichever ends first wins: the work's result,
or :class:`ClientDisconnected` with the work cancelled (and with it a model's queued steps
or an upstream request).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request

from stenostack.errors import ClientDisconnected
from stenostack.http.race import cancel_unless

ResultT = TypeVar("ResultT")


async def unless_disconnected(
    request: Request,
    work: Awaitable[ResultT],
    body_read: Callable[[], Awaitable[None]] | None = None,
) -> ResultT:
    """Await ``work``; if the client hangs up first, cancel it and raise ClientDisconnected.

    ``body_read`` waits until the request's body has been read whole, for work that is
    still sending it (a proxy); without it the body must already be read.
    """
    return await cancel_unless(work, _disconnected(request, body_read), ClientDisconnected)


async def _disconnected(request: Request, body_read: Callable[[], Awaitable[None]] | None) -> None:
    """Return once the client has closed the connection."""
    if body_read is not None:
        await body_read()
    while (await request.receive())["type"] != "http.disconnect":
        pass
