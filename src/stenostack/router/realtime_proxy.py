"""``/v1/realtime`` WebSockets, proxied to a backend.

The backend is chosen by the ``model`` query parameter, where OpenAI's realtime URL carries
it. A transcription session (``?intent=transcription``) names its model only later, in
``session.update``: without a ``model`` it goes to any available backend that serves a
transcription model, in the balancer's order (least load, round robin, or affinity on the
configured header), since every engine serves realtime transcription. The handshake is
tried on up to ``retries.max_attempts`` backends, with the router's own key; a backend that
cannot be reached counts towards its ejection.

Once both sides are open, messages pass each way as they are, until either side closes;
the other is then closed with the same code and reason. Each direction holds one message
at a time: the next is read only once the other side has taken the last one (uvicorn stops
reading the caller's socket until then, aiohttp waits while its write buffer is full and
stops reading the backend's socket while its own queue is), so a slow side slows the other
rather than filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from starlette.websockets import WebSocket, WebSocketDisconnect

from stenostack.errors import APIError, InvalidRequest, ModelNotFound
from stenostack.http.auth import KEY_SUBPROTOCOL_PREFIX
from stenostack.router.backend import Backend
from stenostack.router.balancer import Balancer
from stenostack.router.errors import BackendUnreachable, NoHealthyBackend
from stenostack.router.headers import forwarded_for, upstream_authorization
from stenostack.router.metrics import RouterMetrics
from stenostack.router.pool import BackendPool
from stenostack.router.proxy import RETRYABLE_STATUSES
from stenostack.router.settings import RouterSettings

log = logging.getLogger(__name__)

REALTIME_PATH = "/v1/realtime"
# The metrics' model label for a transcription session that named no model.
ANY_TRANSCRIPTION_MODEL = "realtime-transcription"
# A backend's handshake answers that say "not now": the next backend is tried.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_GATEWAY = 1014
# Codes that report what happened to a connection and may not be sent in a close frame.
UNSENDABLE_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})
# Once the caller has gone, how long the backend's side may take to finish closing.
CLOSE_GRACE_S = 5.0


@dataclass
class Upstream:
    """A session's connection to the backend that accepted it."""

    backend: Backend
    connection: aiohttp.ClientWebSocketResponse
    model: str  # as the metrics name it


@dataclass
class RealtimeProxy:
    pool: BackendPool
    balancer: Balancer
    session: aiohttp.ClientSession
    settings: RouterSettings  # the settings in force: a reload changes them in place
    metrics: RouterMetrics

    async def connect(self, websocket: WebSocket) -> Upstream:
        """A backend's connection for ``websocket`` (authenticated, not yet accepted);
        raises an APIError, for the caller's handshake, if none can take it."""
        model = websocket.query_params.get("model") or ANY_TRANSCRIPTION_MODEL
        backend, connection = await self._connect(websocket, model, self._candidates(websocket))
        return Upstream(backend, connection, model)

    async def relay(self, websocket: WebSocket, upstream: Upstream) -> None:
        """Accept ``websocket`` and pass messages both ways until either side closes."""
        backend = upstream.backend
        backend.begin_request(0.0)  # a session adds no audio estimate, but it is in flight
        inflight = self.metrics.child(self.metrics.inflight, backend.url)
        inflight.inc()
        try:
            await websocket.accept(subprotocol=upstream.connection.protocol)
            await _relay(websocket, upstream.connection, backend.lost)
        finally:
            await upstream.connection.close()
            inflight.dec()
            backend.end_request(0.0)
            self.metrics.child(self.metrics.requests, backend.url, upstream.model, "101").inc()

    def _candidates(self, websocket: WebSocket) -> list[Backend]:
        """Backends for the session, best first; raises if none serves it or can take it."""
        model = websocket.query_params.get("model")
        if model:
            if not self.pool.serving(model):
                raise ModelNotFound(model, sorted(entry["id"] for entry in self.pool.models()))
            available = self.pool.available(model)
        elif websocket.query_params.get("intent") == "transcription":
            available = [b for b in self.pool.all() if b.available() and _transcribes(b)]
        else:
            raise InvalidRequest(
                "Name the model (?model=...) or connect with ?intent=transcription.",
                param="model",
            )
        affinity_key = websocket.headers.get(self.settings.affinity_header)
        order = self.balancer.order(available, affinity_key)
        if not order:  # health checks may bring one back at their next round
            what = model or "realtime transcription"
            raise NoHealthyBackend(what, self.settings.health.interval_s)
        return order

    async def _connect(
        self, websocket: WebSocket, model: str, candidates: list[Backend]
    ) -> tuple[Backend, aiohttp.ClientWebSocketResponse]:
        """The first backend, in order, that accepts the handshake, and its connection."""
        tried = 0
        for backend in candidates[: self.settings.retries.max_attempts]:
            tried += 1
            try:
                async with asyncio.timeout(self.settings.timeouts.connect_s):
                    upstream = await self.session.ws_connect(
                        backend.url + REALTIME_PATH,
                        params=websocket.query_params.multi_items(),
                        headers=self._upstream_headers(websocket),
                        protocols=self._upstream_subprotocols(websocket),
                        max_msg_size=self.settings.realtime_max_message_bytes,
                    )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status not in RETRYABLE_STATUSES:
                    raise APIError.with_status(
                        502, f"The backend refused the realtime connection ({exc.status})."
                    ) from exc
                self._count_failure(backend, model, str(exc.status))
                if exc.status >= 500 and backend.record_failure(self.settings.outlier):
                    self.metrics.child(self.metrics.ejections, backend.url).inc()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("realtime: backend %s unreachable: %s", backend.url, exc or type(exc))
                self._count_failure(backend, model, "connect")
                backend.mark_leaving()  # until its liveness probe hears it serve again
            else:
                backend.record_success()
                return backend, upstream
        raise BackendUnreachable(model, tried)

    def _count_failure(self, backend: Backend, model: str, reason: str) -> None:
        self.metrics.child(self.metrics.errors, backend.url, model, reason).inc()

    def _upstream_headers(self, websocket: WebSocket) -> dict[str, str]:
        return {
            **upstream_authorization(websocket, self.settings),
            "x-forwarded-for": forwarded_for(websocket),
        }

    def _upstream_subprotocols(self, websocket: WebSocket) -> list[str]:
        """The caller's subprotocols; a key among them only from an open router (a key for
        the router never reaches a backend)."""
        offered: list[str] = websocket.scope.get("subprotocols") or []
        if not self.settings.api_keys:
            return offered
        return [name for name in offered if not name.startswith(KEY_SUBPROTOCOL_PREFIX)]


def _transcribes(backend: Backend) -> bool:
    return any(
        (entry.get("capabilities") or {}).get("transcription") for entry in backend.models.values()
    )


async def _relay(
    websocket: WebSocket, upstream: aiohttp.ClientWebSocketResponse, backend_lost: asyncio.Event
) -> None:
    """Pass messages both ways until either side closes, or the backend stops answering its
    liveness probe (a frozen process would otherwise hold the session open in silence)."""
    to_backend = asyncio.create_task(_caller_to_backend(websocket, upstream))
    to_caller = asyncio.create_task(_backend_to_caller(upstream, websocket))
    lost = asyncio.create_task(backend_lost.wait())
    try:
        await asyncio.wait({to_backend, to_caller, lost}, return_when=asyncio.FIRST_COMPLETED)
        if lost.done():
            await _close(websocket, CLOSE_BAD_GATEWAY, "The backend stopped responding.")
        elif to_backend.done():
            # The caller left (its close went upstream) or the backend stopped taking
            # messages: either way the backend's side is ending, and its close may still
            # have to reach the caller.
            await asyncio.wait({to_caller}, timeout=CLOSE_GRACE_S)
    finally:
        for task in (to_backend, to_caller, lost):
            task.cancel()
        results = await asyncio.gather(to_backend, to_caller, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


async def _caller_to_backend(
    websocket: WebSocket, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            code = _sendable(message.get("code"), CLOSE_GOING_AWAY)
            await upstream.close(code=code, message=(message.get("reason") or "").encode())
            return
        try:
            await _send_upstream(upstream, message)
        except (aiohttp.ClientError, ConnectionError):
            return  # the backend is closing: its close comes through the other direction


async def _send_upstream(upstream: aiohttp.ClientWebSocketResponse, message: Any) -> None:
    if message.get("text") is not None:
        await upstream.send_str(message["text"])
    elif message.get("bytes") is not None:
        await upstream.send_bytes(message["bytes"])


async def _backend_to_caller(
    upstream: aiohttp.ClientWebSocketResponse, websocket: WebSocket
) -> None:
    try:
        while True:
            message = await upstream.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                await websocket.send_text(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await websocket.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.CLOSE:
                await _close(websocket, _sendable(message.data, CLOSE_NORMAL), message.extra or "")
                return
            else:  # CLOSING, CLOSED or ERROR: the connection ended without a usable close
                await _close(websocket, _sendable(upstream.close_code, CLOSE_BAD_GATEWAY), "")
                return
    except WebSocketDisconnect:
        return  # the caller left: the other direction closes the backend's side


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # already closed
        await websocket.close(code=code, reason=reason)


def _sendable(code: int | None, fallback: int) -> int:
    """``code`` if a close frame may carry it, else ``fallback``."""
    if code is None or code in UNSENDABLE_CLOSE_CODES or not 1000 <= code < 5000:
        return fallback
    return code
