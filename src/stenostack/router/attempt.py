"""One try of a request on one backend: how it can end, and its bookkeeping.

An attempt ends in one of three ways. :class:`Answered`: the backend's answer goes to the
client. :class:`Retry`: it failed before anything reached the client, so another backend
may take the request (if its body can be sent again). :class:`GiveUp`: it failed in a way
another backend would not fix, or the client left.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from starlette.responses import Response

from stenostack.errors import APIError
from stenostack.router.backend import Backend
from stenostack.router.metrics import RouterMetrics


@dataclass(frozen=True)
class Answered:
    response: Response


@dataclass(frozen=True)
class Retry:
    backend: Backend  # the one that failed
    # "connect", "transport", "unresponsive", or the backend's status ("429", "502", "503")
    reason: str
    refusal: Response | None = None  # the backend's own answer, passed on if none follows


@dataclass(frozen=True)
class GiveUp:
    error: APIError


Outcome = Answered | Retry | GiveUp


@dataclass(eq=False)
class AttemptAccount:
    """What one attempt counts on its backend: its load and the in-flight gauge while it
    runs, then, if it was answered, its status and latency. It ends once, whichever way."""

    backend: Backend
    model: str
    audio_s: float
    metrics: RouterMetrics
    started: float = field(init=False, default_factory=time.monotonic)
    lost: asyncio.Event = field(init=False)  # set if the backend stops responding meanwhile
    _open: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        self.lost = self.backend.lost
        self.backend.begin_request(self.audio_s)
        self.metrics.child(self.metrics.inflight, self.backend.url).inc()

    def release(self) -> None:
        """The attempt ended unanswered: it no longer loads its backend."""
        if self._open:
            self._open = False
            self.backend.end_request(self.audio_s)
            self.metrics.child(self.metrics.inflight, self.backend.url).dec()

    def answered(self, status: int) -> None:
        """The answer is over (all of it sent to the client, or 499 if the client left)."""
        if not self._open:
            return
        self.release()
        url, metrics = self.backend.url, self.metrics
        metrics.child(metrics.requests, url, self.model, str(status)).inc()
        metrics.child(metrics.latency, url, self.model).observe(time.monotonic() - self.started)
