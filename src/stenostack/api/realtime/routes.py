"""``/v1/realtime?intent=transcription``: the WebSocket the official SDK's
``client.realtime.connect(extra_query={"intent": "transcription"})`` opens."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.websockets import WebSocket

from stenostack.api.realtime import events
from stenostack.api.realtime.limits import RealtimeLimits, SessionSlots
from stenostack.api.realtime.outbox import close_with_error
from stenostack.api.realtime.session import CLOSE_POLICY, CLOSE_TRY_LATER, RealtimeSession
from stenostack.engine.engine import Engine
from stenostack.metrics import EngineMetrics

router = APIRouter()

# Browsers cannot set headers on a WebSocket, so OpenAI's browser clients name the protocol
# (and pass credentials) as subprotocols; the connection must echo "realtime" back.
SUBPROTOCOL = "realtime"


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    engine: Engine = websocket.app.state.engine
    metrics: EngineMetrics = websocket.app.state.metrics
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)

    intent = websocket.query_params.get("intent")
    if intent != "transcription":
        await _refuse(
            websocket,
            "This server serves realtime transcription only: connect to "
            "/v1/realtime?intent=transcription.",
            code="unsupported_intent",
            param="intent",
            close_code=CLOSE_POLICY,
        )
        return
    if not engine.registry.ready:
        await _refuse(
            websocket,
            "The models are still loading; reconnect shortly.",
            code="service_unavailable",
            close_code=CLOSE_TRY_LATER,
        )
        return

    limits: RealtimeLimits = websocket.app.state.realtime_limits
    slots: SessionSlots = websocket.app.state.realtime_slots
    if not slots.take():
        await _refuse(
            websocket,
            f"This server is serving its limit of {slots.limit} realtime sessions; "
            "reconnect later.",
            code="session_limit_reached",
            close_code=CLOSE_TRY_LATER,
        )
        return
    try:
        session = RealtimeSession(websocket, engine, metrics, limits)
        metrics.realtime_sessions.inc()
        try:
            await session.serve()
        finally:
            metrics.realtime_sessions.dec()
    finally:
        slots.give_back()


async def _refuse(
    websocket: WebSocket, message: str, *, code: str, close_code: int, param: str | None = None
) -> None:
    """Say why in an error event, then close with a code and reason."""
    error_type = "server_error" if close_code == CLOSE_TRY_LATER else "invalid_request_error"
    error = events.error(message, code=code, param=param, error_type=error_type)
    await close_with_error(websocket, error, close_code)
