"""Sending one request to a backend, and failing over to the next when it is safe.

A request is tried on the balancer's first choice. If that attempt fails before any byte
of a response reached the client (the connection is refused or reset, or the backend
answers 502, 503 or 429) and the body can be sent again, the next backend is tried, up to
``retries.max_attempts`` and ``retries.max_total_s``. Connection failures and 5xx answers
count towards ejecting the backend. Once a response starts, it is passed through as it
arrives, server-sent events included; if the client goes away, the upstream request is
closed, which cancels the engine's work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from stenostack.errors import ClientDisconnected, ModelNotFound
from stenostack.http.disconnect import unless_disconnected
from stenostack.http.request_id import request_id
from stenostack.router.backend import Backend
from stenostack.router.balancer import Balancer
from stenostack.router.body import RequestBody
from stenostack.router.errors import BackendTimeout, BackendUnreachable, NoHealthyBackend
from stenostack.router.metrics import RouterMetrics
from stenostack.router.pool import BackendPool
from stenostack.router.settings import RouterSettings

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# Set by the router's own server on the way out.
REPLACED_ON_RESPONSE = frozenset({"x-request-id", "date", "server"})
MAX_ERROR_BODY = 64 * 1024
# Answers up to this size with a known length are read whole instead of streamed.
SMALL_RESPONSE_BYTES = 1024 * 1024
# 16-bit 16 kHz mono PCM: the yardstick for turning upload bytes into audio seconds.
BYTES_PER_AUDIO_SECOND = 32_000


@dataclass
class Outgoing:
    """What is sent upstream, whichever backend gets it."""

    model: str
    body: RequestBody
    affinity_key: str | None
    audio_s: float  # the load it adds (0 for requests without audio)


class Proxy:
    def __init__(
        self,
        pool: BackendPool,
        balancer: Balancer,
        session: aiohttp.ClientSession,
        settings: RouterSettings,
        metrics: RouterMetrics,
    ) -> None:
        self.pool = pool
        self.balancer = balancer
        self.session = session
        self.settings = settings
        self.metrics = metrics

    async def forward(self, request: Request, outgoing: Outgoing) -> Response:
        model = outgoing.model
        if not self.pool.serving(model):
            names = sorted({entry["id"] for entry in self.pool.models()})
            raise ModelNotFound(model, names)
        order = self.balancer.order(self.pool.available(model), outgoing.affinity_key)
        if not order:
            retry_after = max(int(self.settings.health.interval_s), 1)
            raise NoHealthyBackend(model, retry_after)

        retries = self.settings.retries
        deadline = time.monotonic() + retries.max_total_s
        last_error: Response | None = None
        failure: tuple[Backend, str] | None = None
        tried = 0
        for backend in order[: retries.max_attempts]:
            if tried and (not outgoing.body.replayable or time.monotonic() > deadline):
                break
            if failure is not None:
                self.metrics.child(self.metrics.retries, failure[0].url, model, failure[1]).inc()
            tried += 1
            result = await self._attempt(request, backend, outgoing)
            if isinstance(result, UpstreamResponse):
                return result
            last_error = result
            failure = (backend, "connect" if result is None else str(result.status_code))
        if last_error is not None:
            return last_error
        raise BackendUnreachable(model, tried)

    async def _attempt(
        self, request: Request, backend: Backend, outgoing: Outgoing
    ) -> UpstreamResponse | Response | None:
        """The upstream response, or the failure: an error response to retry, or None
        when no answer came at all."""
        model = outgoing.model
        started = time.monotonic()
        backend.started(outgoing.audio_s)
        self.metrics.child(self.metrics.inflight, backend.url).inc()
        handed_over = False
        try:
            upstream = await self._send(request, backend, outgoing)
        except ClientDisconnected:
            self._done(backend, outgoing)
            raise
        except TimeoutError:
            self._done(backend, outgoing)
            self.metrics.child(self.metrics.errors, backend.url, model, "first_byte_timeout").inc()
            raise BackendTimeout("no response headers in time") from None
        except aiohttp.ClientError as exc:
            self._done(backend, outgoing)
            connect_failed = isinstance(
                exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError
            )
            self._failed(
                backend, model, "connect" if connect_failed else "transport", connect_failed
            )
            log.warning("backend %s failed: %s", backend.url, exc)
            return None
        try:
            metrics = self.metrics
            metrics.child(metrics.first_byte, backend.url, model).observe(
                time.monotonic() - started
            )
            if upstream.status in RETRYABLE_STATUSES:
                if upstream.status != 429:
                    self._failed(backend, model, str(upstream.status), False)
                else:
                    metrics.child(metrics.errors, backend.url, model, "429").inc()
                body = await upstream.content.read(MAX_ERROR_BODY)
                return Response(body, upstream.status, headers=_response_headers(upstream))
            if upstream.status >= 500:
                self._failed(backend, model, str(upstream.status), False)
            else:
                backend.record_success()
            outgoing.body.stop_keeping()  # a backend answered: no retry can follow
            metrics.child(metrics.upload_bytes, backend.url, model).inc(outgoing.body.received)
            metrics.child(metrics.audio_seconds, backend.url, model).inc(outgoing.audio_s)
            if _small_and_whole(upstream):
                # Most answers are a few bytes of JSON: read them here and skip streaming.
                body = await asyncio.wait_for(upstream.read(), self.settings.timeouts.idle_s)
                self._finished(backend, outgoing, upstream.status, started)
                handed_over = True  # _finished did the accounting
                return Response(body, upstream.status, headers=_response_headers(upstream))
            handed_over = True
            return UpstreamResponse(
                upstream,
                self.settings.timeouts.idle_s,
                on_end=lambda status: self._finished(backend, outgoing, status, started),
            )
        finally:
            if not handed_over:
                upstream.close()
                self._done(backend, outgoing)
            elif upstream.content.at_eof():
                upstream.release()

    async def _send(
        self, request: Request, backend: Backend, outgoing: Outgoing
    ) -> aiohttp.ClientResponse:
        timeouts = self.settings.timeouts
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.first_byte_s
        )
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        sending = self.session.request(
            request.method,
            backend.url + path,
            data=outgoing.body.whole() or outgoing.body.chunks(),
            headers=self._request_headers(request),
            timeout=timeout,
            allow_redirects=False,
            auto_decompress=False,
        )
        return await unless_disconnected(request, sending, outgoing.body.wait_complete)

    def _request_headers(self, request: Request) -> dict[str, str]:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name not in HOP_BY_HOP and name != "authorization"
        }
        if self.settings.backend_api_key:
            headers["authorization"] = f"Bearer {self.settings.backend_api_key}"
        elif "authorization" in request.headers and not self.settings.api_keys:
            headers["authorization"] = request.headers["authorization"]
        headers["x-request-id"] = request_id(request.scope)
        client = request.client.host if request.client else ""
        previous = request.headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{previous}, {client}" if previous else client
        return headers

    def _failed(self, backend: Backend, model: str, reason: str, connect_failed: bool) -> None:
        metrics = self.metrics
        metrics.child(metrics.errors, backend.url, model, reason).inc()
        if backend.record_failure(self.settings.outlier, connect_failed=connect_failed):
            log.warning("backend %s ejected after failures", backend.url)
            metrics.child(metrics.ejections, backend.url).inc()
            metrics.child(metrics.backend_healthy, backend.url).set(0)

    def _done(self, backend: Backend, outgoing: Outgoing) -> None:
        backend.finished(outgoing.audio_s)
        self.metrics.child(self.metrics.inflight, backend.url).dec()

    def _finished(self, backend: Backend, outgoing: Outgoing, status: int, started: float) -> None:
        self._done(backend, outgoing)
        metrics = self.metrics
        metrics.child(metrics.requests, backend.url, outgoing.model, str(status)).inc()
        metrics.child(metrics.latency, backend.url, outgoing.model).observe(
            time.monotonic() - started
        )


def _small_and_whole(upstream: aiohttp.ClientResponse) -> bool:
    """A short body of known length that is not an event stream."""
    length = upstream.content_length
    return (
        length is not None
        and length <= SMALL_RESPONSE_BYTES
        and not upstream.content_type.startswith("text/event-stream")
    )


def _response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {
        name: value
        for name, value in upstream.headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in REPLACED_ON_RESPONSE
    }


class UpstreamResponse(StreamingResponse):
    """A backend's response passed through as it arrives; closing it closes upstream."""

    def __init__(
        self, upstream: aiohttp.ClientResponse, idle_s: float, on_end: Callable[[int], None]
    ) -> None:
        self._upstream = upstream
        self._idle_s = idle_s
        self._on_end = on_end
        super().__init__(self._pieces(), status_code=upstream.status)
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in _response_headers(upstream).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        passed_through = False  # the whole upstream body reached the client
        try:
            await super().__call__(scope, receive, send)
            passed_through = self._upstream.content.at_eof()
        finally:
            self._upstream.close()
            self._on_end(self.status_code if passed_through else 499)

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
