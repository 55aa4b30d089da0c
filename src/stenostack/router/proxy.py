"""Sending one request to a backend, and failing over to the next when it is safe.

A request is tried on the balancer's first choice. If that attempt fails before any byte
of a response reached the client (the connection is refused or reset, or the backend
answers 502, 503 or 429) and the body can be sent again, the next backend is tried, up to
``retries.max_attempts`` and ``retries.max_total_s``. Connection failures and 5xx answers
count towards ejecting the backend. Once a response starts, it is passed through as it
arrives, server-sent events included; if the client goes away, the upstream request is
closed, which cancels the engine's work.

Blame goes where it belongs. A client that hangs up, stalls or sends too much while its
body streams upstream fails the upload inside aiohttp, which reports it as a connection
error of its own (``ClientConnectionError`` caused by ours); the body remembers the
client's error, and the attempt ends with it: no retry, nothing counted against the
backend. If the backend stops answering its liveness probe (:mod:`.liveness`) while it has
the request, the attempt is cancelled at once and, if nothing has reached the client yet,
retried elsewhere when the body can be sent again.

Each attempt is sent (:meth:`Proxy._send`), its answer judged (:meth:`Proxy._judge`:
what it says of the backend's health) and ended one of three ways (:mod:`.attempt`), with
its bookkeeping kept by an :class:`AttemptAccount`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from stenostack.errors import APIError, ClientDisconnected, ModelNotFound
from stenostack.http.disconnect import unless_disconnected
from stenostack.http.race import cancel_unless
from stenostack.router.attempt import Answered, AttemptAccount, GiveUp, Outcome, Retry
from stenostack.router.backend import Backend, says_draining
from stenostack.router.balancer import Balancer
from stenostack.router.body import RequestBody
from stenostack.router.errors import (
    BackendTimeout,
    BackendUnreachable,
    BackendUnresponsive,
    NoHealthyBackend,
)
from stenostack.router.headers import client_response_headers, upstream_request_headers
from stenostack.router.metrics import RouterMetrics
from stenostack.router.pool import BackendPool
from stenostack.router.settings import RouterSettings
from stenostack.router.upstream_response import UpstreamResponse

log = logging.getLogger(__name__)

# Answers that say "not now" rather than "no": another backend may well say yes.
RETRYABLE_STATUSES = frozenset({429, 502, 503})
MAX_REFUSAL_BODY = 64 * 1024
# Answers up to this size with a known length are read whole instead of streamed.
SMALL_RESPONSE_BYTES = 1024 * 1024
# The backend label of requests the router answered itself (refused, or the client's fault).
ROUTER_ITSELF = "none"
# How often a request held for a backend (cold start) looks again.
COLD_START_POLL_S = 0.25


@dataclass
class Outgoing:
    """What is sent upstream, whichever backend gets it."""

    model: str
    body: RequestBody
    affinity_key: str | None
    audio_s: float  # the load it adds (0 for requests without audio)


@dataclass
class Proxy:
    pool: BackendPool
    balancer: Balancer
    session: aiohttp.ClientSession
    settings: RouterSettings  # the settings in force: a reload changes them in place
    metrics: RouterMetrics

    async def forward(self, request: Request, outgoing: Outgoing) -> Response:
        retries = self.settings.retries
        deadline = time.monotonic() + retries.max_total_s
        failed: Retry | None = None
        tried = 0
        for backend in (await self._candidates(outgoing))[: retries.max_attempts]:
            if failed is not None:
                if not outgoing.body.replayable or time.monotonic() > deadline:
                    break
                if not backend.available():
                    continue  # ejected or lost since the order was made
                self.metrics.child(
                    self.metrics.retries, failed.backend.url, outgoing.model, failed.reason
                ).inc()
            tried += 1
            outcome = await self._attempt(request, backend, outgoing)
            if isinstance(outcome, Answered):
                return outcome.response
            if isinstance(outcome, GiveUp):
                raise outcome.error
            failed = outcome
        if failed is not None and failed.refusal is not None:
            return failed.refusal  # the last backend's own "not now", Retry-After and all
        raise BackendUnreachable(outgoing.model, tried)

    async def _candidates(self, outgoing: Outgoing) -> list[Backend]:
        """Backends for the request, best first. With none available, a request for a model
        that is served (or will be: a cold-start model) waits up to ``cold_start.wait_s`` for
        one, counted as waiting; raises if none serves the model or none became available."""
        model, cold_start = outgoing.model, self.settings.cold_start
        deadline = time.monotonic() + cold_start.wait_s
        waiting = None
        try:
            while True:
                if not self.pool.serving(model) and model not in cold_start.models:
                    served = sorted({entry["id"] for entry in self.pool.models()})
                    raise ModelNotFound(model, served)
                order = self.balancer.order(self.pool.available(model), outgoing.affinity_key)
                if order:
                    return order
                if time.monotonic() >= deadline:
                    # Health checks may bring one back at their next round.
                    raise NoHealthyBackend(model, self.settings.health.interval_s)
                if waiting is None:
                    waiting = self.metrics.child(self.metrics.waiting, model)
                    waiting.inc()
                await asyncio.sleep(COLD_START_POLL_S)
        finally:
            if waiting is not None:
                waiting.dec()

    async def _attempt(self, request: Request, backend: Backend, outgoing: Outgoing) -> Outcome:
        account = AttemptAccount(backend, outgoing.model, outgoing.audio_s, self.metrics)
        try:
            upstream = await self._send(request, account, outgoing)
        except (ClientDisconnected, BackendUnresponsive, TimeoutError, aiohttp.ClientError) as exc:
            account.release()
            return self._unsent(backend, outgoing, exc)
        except BaseException:  # the body's own errors (too large, malformed), cancellation
            account.release()
            raise
        try:
            return await self._receive(upstream, outgoing, account)
        except BaseException:
            upstream.close()
            account.release()
            raise

    async def _send(
        self, request: Request, account: AttemptAccount, outgoing: Outgoing
    ) -> aiohttp.ClientResponse:
        """The backend's response headers, or the reason none came (raised)."""
        timeouts = self.settings.timeouts
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.first_byte_s
        )
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        sending = self.session.request(
            request.method,
            account.backend.url + path,
            data=outgoing.body.whole() or outgoing.body.chunks(),
            headers=upstream_request_headers(request, self.settings),
            timeout=timeout,
            allow_redirects=False,
            auto_decompress=False,
        )
        return await unless_disconnected(
            request,
            cancel_unless(sending, account.lost.wait(), BackendUnresponsive),
            outgoing.body.wait_complete,
        )

    def _unsent(
        self,
        backend: Backend,
        outgoing: Outgoing,
        failure: ClientDisconnected | BackendUnresponsive | TimeoutError | aiohttp.ClientError,
    ) -> Outcome:
        """The outcome of an attempt that got no response."""
        model, body = outgoing.model, outgoing.body
        if body.client_error is not None:
            # Whatever aiohttp made of it, reading the client failed first: its fault.
            return GiveUp(body.client_error)
        if isinstance(failure, ClientDisconnected):
            return GiveUp(failure)
        if isinstance(failure, BackendUnresponsive):
            self.metrics.child(self.metrics.errors, backend.url, model, "unresponsive").inc()
            return Retry(backend, "unresponsive") if body.replayable else GiveUp(failure)
        if isinstance(failure, TimeoutError):
            self.metrics.child(self.metrics.errors, backend.url, model, "first_byte_timeout").inc()
            return GiveUp(BackendTimeout("no response headers in time"))
        if isinstance(failure, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError):
            # Refused, or a kept-alive connection closed: the backend is leaving (a draining
            # engine closes its port and its idle connections). Its liveness probe brings it
            # back at its first answer as a serving engine.
            self.metrics.child(self.metrics.errors, backend.url, model, "connect").inc()
            if backend.mark_leaving():
                log.warning("backend %s refused the request: out of rotation", backend.url)
            return Retry(backend, "connect")
        self._count_failure(backend, model, "transport")
        log.warning("backend %s failed: %s", backend.url, failure)
        return Retry(backend, "transport")

    async def _receive(
        self, upstream: aiohttp.ClientResponse, outgoing: Outgoing, account: AttemptAccount
    ) -> Outcome:
        """The outcome of an attempt the backend answered."""
        backend, status, metrics = account.backend, upstream.status, self.metrics
        metrics.child(metrics.first_byte, backend.url, outgoing.model).observe(
            time.monotonic() - account.started
        )
        if status in RETRYABLE_STATUSES:
            said = await upstream.content.read(MAX_REFUSAL_BODY)
            refusal = Response(said, status, headers=client_response_headers(upstream))
            upstream.close()
            account.release()
            if says_draining(status, said):
                self.metrics.child(metrics.errors, backend.url, outgoing.model, "draining").inc()
                if backend.mark_leaving():
                    log.info("backend %s is draining: out of rotation", backend.url)
                return Retry(backend, "draining", refusal)
            self._judge(backend, outgoing.model, status)
            return Retry(backend, str(status), refusal)
        self._judge(backend, outgoing.model, status)

        outgoing.body.stop_keeping()  # a backend answered: no retry can follow
        metrics.child(metrics.upload_bytes, backend.url, outgoing.model).inc(outgoing.body.received)
        metrics.child(metrics.audio_seconds, backend.url, outgoing.model).inc(outgoing.audio_s)
        idle_s = self.settings.timeouts.idle_s
        if not _small_and_whole(upstream):
            return Answered(
                UpstreamResponse(upstream, idle_s, on_end=account.answered, lost=account.lost)
            )
        # Most answers are a few bytes of JSON: read them here and skip streaming.
        body = await cancel_unless(
            asyncio.wait_for(upstream.read(), idle_s), account.lost.wait(), BackendUnresponsive
        )
        upstream.release()
        account.answered(status)
        return Answered(Response(body, status, headers=client_response_headers(upstream)))

    def refused(self, model: str | None, error: APIError) -> None:
        """Count a request the router answered itself with ``error`` (the client's fault,
        or no backend could take it); the model is named only if a backend serves it, or
        will (a cold-start model): names callers make up never become labels."""
        known = model is not None and (
            bool(self.pool.serving(model)) or model in self.settings.cold_start.models
        )
        served = model if model is not None and known else ""
        status = str(error.status_code)
        self.metrics.child(self.metrics.requests, ROUTER_ITSELF, served, status).inc()
        if error.status_code < 500:
            log.info("request refused (%s): %s", status, error.message)

    def _judge(self, backend: Backend, model: str, status: int) -> None:
        """What an answer says of the backend's health (outlier ejection)."""
        if status >= 500:
            self._count_failure(backend, model, str(status))
        elif status == 429:  # busy, not broken
            self.metrics.child(self.metrics.errors, backend.url, model, "429").inc()
        else:
            backend.record_success()

    def _count_failure(self, backend: Backend, model: str, reason: str) -> None:
        metrics = self.metrics
        metrics.child(metrics.errors, backend.url, model, reason).inc()
        if backend.record_failure(self.settings.outlier):
            log.warning("backend %s ejected after failures", backend.url)
            metrics.child(metrics.ejections, backend.url).inc()
            metrics.child(metrics.backend_healthy, backend.url).set(0)


def _small_and_whole(upstream: aiohttp.ClientResponse) -> bool:
    """A short body of known length that is not an event stream."""
    length = upstream.content_length
    return (
        length is not None
        and length <= SMALL_RESPONSE_BYTES
        and not upstream.content_type.startswith("text/event-stream")
    )
