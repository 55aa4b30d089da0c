"""Liveness probes: is each backend's process running at all?

The health check (:mod:`.health`) sends a real transcription with a generous timeout, as a
busy engine may take a while to get to it, so it cannot tell busy from frozen quickly. An
engine answers ``GET /health`` from its event loop, which stays free while the model works
on its threads: a busy engine answers at once, and only a frozen (stopped, deadlocked,
swapped out) or dead one does not. A backend that has not answered for
``liveness_timeout_s`` is lost: out of rotation, and its requests in flight are retried
elsewhere (:mod:`.proxy`). Its first answer brings it back. A backend that refuses the
connection, or answers that it is draining, is not silent but leaving (an engine told to
stop says so for its drain notice, then closes its port and finishes its requests): it
leaves rotation, what it holds is left to finish, and its first answer as a serving engine
brings it back (an engine restarted on the same address).
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from stenostack.router.backend import Backend, says_draining
from stenostack.router.backend_checks import BackendChecks

log = logging.getLogger(__name__)


class LivenessProbe(BackendChecks):
    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.gather(*(self.probe(backend) for backend in self.pool.all()))
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(self.settings.health.liveness_interval_s - elapsed, 0.0))

    async def probe(self, backend: Backend) -> None:
        timeout_s = self.settings.health.liveness_timeout_s
        try:
            async with self.session.get(
                f"{backend.url}/health",
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                body = await response.read()  # any answer at all: its event loop runs
        except aiohttp.ClientConnectorError as exc:
            # Refused: nothing listens there. A draining engine closes its port and then
            # finishes what it holds, and a dead one has already reset its connections, so
            # the backend leaves rotation without its requests in flight being cancelled.
            if backend.mark_leaving():
                log.info("backend %s refuses connections (%s): out of rotation", backend.url, exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # One failed probe is not enough (a keep-alive connection the backend had just
            # closed fails too): only silence for the whole timeout is.
            silent_s = time.monotonic() - backend.answered_probe_at
            if silent_s >= timeout_s and backend.mark_unresponsive():
                log.warning(
                    "backend %s gave no sign of life for %.1f s (%s): out of rotation, "
                    "its %d requests in flight cancelled (and retried where they can be)",
                    backend.url,
                    silent_s,
                    str(exc) or type(exc).__name__,
                    backend.inflight_requests,
                )
                self.metrics.child(self.metrics.unresponsive, backend.url).inc()
        else:
            backend.answered_probe_at = time.monotonic()
            if backend.mark_responsive():
                log.info("backend %s answers again", backend.url)
            if says_draining(response.status, body):
                if backend.mark_leaving():
                    log.info("backend %s is draining: out of rotation", backend.url)
            elif backend.mark_serving():
                log.info("backend %s serves again", backend.url)
        self.metrics.child(self.metrics.backend_healthy, backend.url).set(int(backend.available()))
