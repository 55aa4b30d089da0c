"""A backend: one engine (or vLLM server) the router forwards to, and what it knows of it.

Its state has three parts, named as proxies name them: what it serves (models learned
from its ``/v1/models``), whether it is healthy (active health checks), responsive (its
liveness probe), leaving (it refuses connections or says it is draining) or ejected
(outlier ejection after failures seen on real traffic), and its load (audio seconds the
router has in flight there, plus what the engine itself reports as queued).

A backend that stops answering its liveness probe (a frozen process) is *lost*: requests
in flight there wait on :attr:`Backend.lost` and give up on it at once. A *leaving* one
(told to stop, or restarting) only gets no new work: what it holds is left to finish, and
its first answer as a serving engine brings it back, with no ejection to wait out.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from stenostack.router.settings import OutlierEjection

# What a draining engine says: ``/health`` answers 200 with this status (it is alive), and
# new work gets 503 with this error code (see stenostack.http.drain).
DRAINING_STATUS = "draining"
DRAINING_ERROR_CODE = "server_draining"


@dataclass
class Backend:
    url: str
    # Model id -> its /v1/models entry (capabilities included).
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthy: bool = False  # set by active health checks
    responsive: bool = True  # answers its liveness probe in time
    leaving: bool = False  # refuses connections, or said it is draining
    answered_probe_at: float = field(default_factory=time.monotonic)
    # Set when it stops answering; a fresh one once it answers again, so each attempt waits
    # on the one of its own time.
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    ejected_until: float = 0.0  # monotonic time; passive outlier ejection
    ejections_in_a_row: int = 0
    consecutive_failures: int = 0
    inflight_requests: int = 0
    inflight_audio_s: float = 0.0  # the router's own estimate for requests it has there
    reported_queued_audio_s: float = 0.0  # the engine's stenostack_queued_audio_seconds
    inflight_at_report_s: float = 0.0  # our own estimate when that report was read

    def available(self, now: float | None = None) -> bool:
        return (
            self.healthy
            and self.responsive
            and not self.leaving
            and (now or time.monotonic()) >= self.ejected_until
        )

    def load(self) -> float:
        """Audio seconds queued and running here: ours, plus other callers' as reported."""
        others = max(self.reported_queued_audio_s - self.inflight_at_report_s, 0.0)
        return self.inflight_audio_s + others

    def begin_request(self, audio_s: float) -> None:
        """A request with ``audio_s`` of audio is sent here (0 for requests without audio)."""
        self.inflight_requests += 1
        self.inflight_audio_s += audio_s

    def end_request(self, audio_s: float) -> None:
        """That request no longer loads this backend: answered, failed or abandoned."""
        self.inflight_requests -= 1
        self.inflight_audio_s = max(self.inflight_audio_s - audio_s, 0.0)
        if self.inflight_requests == 0:
            self.inflight_audio_s = 0.0

    # -- liveness ---------------------------------------------------------------------------

    def mark_unresponsive(self) -> bool:
        """It did not answer its liveness probe: out of rotation, and requests in flight
        there are told. Returns whether it was responsive until now."""
        was_responsive = self.responsive
        self.responsive = False
        self.lost.set()
        return was_responsive

    def mark_responsive(self) -> bool:
        """It answered its liveness probe. Returns whether it had been lost until now."""
        if self.responsive:
            return False
        self.responsive = True
        self.lost = asyncio.Event()
        return True

    def mark_leaving(self) -> bool:
        """It refused a connection or said it is draining: no new work until it serves
        again. Returns whether it was in rotation until now."""
        was_staying = not self.leaving
        self.leaving = True
        return was_staying

    def mark_serving(self) -> bool:
        """It answered as a serving engine. Returns whether it had been leaving."""
        was_leaving = self.leaving
        self.leaving = False
        return was_leaving

    # -- outlier ejection ---------------------------------------------------------------

    def record_success(self) -> None:
        self.consecutive_failures = 0

    def record_failure(self, policy: OutlierEjection) -> bool:
        """Count a failure; eject after enough in a row. Returns whether this failure
        ejected the backend."""
        self.consecutive_failures += 1
        if self.consecutive_failures < policy.consecutive_failures:
            return False
        now = time.monotonic()
        if now < self.ejected_until:
            return False
        duration = min(policy.base_ejection_s * 2**self.ejections_in_a_row, policy.max_ejection_s)
        self.ejected_until = now + duration
        self.ejections_in_a_row += 1
        self.consecutive_failures = 0
        return True

    def readmit(self) -> None:
        """A health check passed after the ejection ran out."""
        self.ejections_in_a_row = 0


def says_draining(status: int, body: bytes) -> bool:
    """Whether an answer is a draining engine's: its liveness answer, or its refusal of
    new work. Other servers (vLLM) answer neither way, and stay in rotation."""
    if status not in (200, 503) or not body.startswith(b"{"):
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    if not isinstance(answer, dict):
        return False
    error = answer.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return answer.get("status") == DRAINING_STATUS or code == DRAINING_ERROR_CODE
