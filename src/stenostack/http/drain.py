"""The drain notice: what a server does between SIGTERM and closing its port.

Under Kubernetes a pod is sent SIGTERM at the same moment it starts being removed from its
Service's endpoints, and clients (kube-proxy, ingresses, the router's pod watch) learn of
the removal a moment later. A server that closed its port at once would refuse the
connections still sent its way. So for ``drain_notice_s`` after SIGTERM the server keeps
listening: ``/ready`` answers 503, and the engine answers new work with 503, code
``server_draining`` and ``Retry-After`` (a router retries it on another engine at once),
while the requests it holds go on. Then uvicorn's own shutdown runs: the port closes and
admitted work has ``drain_timeout_s`` to finish.

A second SIGTERM, or SIGINT (Ctrl-C at a terminal), skips the notice.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from stenostack.errors import ServerDraining
from stenostack.http.refusal import refuse

log = logging.getLogger(__name__)

SignalHandler = Callable[[int, FrameType | None], Any]


class Drain:
    """Whether this server process has been told to stop, and the notice it gives."""

    def __init__(self, notice_s: float) -> None:
        self.notice_s = notice_s
        self.draining = False

    def install(self) -> None:
        """Put the notice in front of the SIGTERM handler the server installed (uvicorn's,
        which starts its shutdown). Call from the server's event loop once it runs; a server
        not on the main thread (an in-process test server) cannot take signals and is left
        as it is."""
        if threading.current_thread() is not threading.main_thread():
            return
        stop_now = signal.getsignal(signal.SIGTERM)
        if not callable(stop_now):
            return
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining or self.notice_s <= 0:
                self.draining = True
                stop_now(signum, frame)
                return
            self.draining = True
            log.info("SIGTERM: refusing new work for %g s before closing the port", self.notice_s)
            loop.call_soon_threadsafe(loop.call_later, self.notice_s, stop_now, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


class RefuseWhileDraining:
    """Answer new work with 503 ``server_draining`` once the drain has begun; requests for
    which ``is_work`` says no (probes, metrics, model lists) are served as usual."""

    def __init__(self, app: ASGIApp, *, drain: Drain, is_work: Callable[[Scope], bool]) -> None:
        self.app = app
        self.drain = drain
        self.is_work = is_work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.drain.draining and scope["type"] in ("http", "websocket") and self.is_work(scope):
            await refuse(scope, receive, send, ServerDraining())
            return
        await self.app(scope, receive, send)
