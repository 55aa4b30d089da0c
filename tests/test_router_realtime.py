"""The router's realtime proxy against a scripted WebSocket backend: close codes and
reasons pass both ways, binary frames pass unchanged, and a backend that stops reading
back-pressures the caller instead of filling the router's memory.

The backend serves one model without the transcription capability, so the router health
checks it with ``GET /health`` and routes to it only by ``?model=``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.realtime_client import realtime_session
from tests.servers import RunningServer, app_server, peak_rss_mb, router_server, wait_until

MODEL = "scripted-realtime"
MESSAGE_BYTES = 1024 * 1024
MAX_MESSAGE_BYTES = 2 * MESSAGE_BYTES
MESSAGES = 128
STALL_S = 6.0


class ScriptedBackend:
    """A realtime endpoint driven by text commands: ``close CODE REASON`` closes with that
    code, ``stall SECONDS`` stops reading for that long, ``digest`` answers the SHA-256 of
    the binary messages received so far; other text is echoed. The caller's close is recorded."""

    def __init__(self) -> None:
        self.caller_closes: list[tuple[int, str]] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health),
                Route("/v1/models", self.models),
                WebSocketRoute("/v1/realtime", self.realtime),
            ]
        )

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, _: Request) -> Response:
        entry = {"id": MODEL, "object": "model", "created": 0, "owned_by": "tests"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def realtime(self, websocket: WebSocket) -> None:
        await websocket.accept()
        received = hashlib.sha256()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.caller_closes.append((message.get("code", 0), message.get("reason") or ""))
                return
            if message.get("bytes") is not None:
                received.update(message["bytes"])
                continue
            command, _, argument = message["text"].partition(" ")
            if command == "close":
                code, _, reason = argument.partition(" ")
                await websocket.close(int(code), reason)
                return
            if command == "stall":
                await asyncio.sleep(float(argument))
            elif command == "digest":
                await websocket.send_text(received.hexdigest())
            else:
                await websocket.send_text(message["text"])


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def router(backend: ScriptedBackend) -> Iterator[RunningServer]:
    with (
        app_server(backend.app(), ready_path="/health") as backend_url,
        router_server(
            "--backend", backend_url, "--realtime-max-message-bytes", str(MAX_MESSAGE_BYTES)
        ) as server,
    ):
        yield server


def test_close_codes_and_reasons_pass_both_ways(
    router: RunningServer, backend: ScriptedBackend
) -> None:
    with realtime_session(router.url, f"model={MODEL}") as session:
        session.connection.send("hello")
        assert session.connection.recv(timeout=10) == "hello"
        session.connection.send("close 4100 backend says bye")
        with pytest.raises(ConnectionClosed) as closed:
            session.connection.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4100, "backend says bye")

    before = len(backend.caller_closes)
    with realtime_session(router.url, f"model={MODEL}") as session:
        session.connection.send("ping")
        assert session.connection.recv(timeout=10) == "ping"
        session.connection.close(4200, "caller says bye")
    wait_until(lambda: len(backend.caller_closes) > before, 10, "the caller's close upstream")
    assert backend.caller_closes[-1] == (4200, "caller says bye")


def test_a_backend_that_stops_reading_back_pressures_the_caller(router: RunningServer) -> None:
    payload = random.Random(0).randbytes(MESSAGE_BYTES)  # incompressible: deflate cannot hide it
    sent = 0
    with realtime_session(router.url, f"model={MODEL}") as session:
        connection = session.connection

        def flood() -> None:
            nonlocal sent
            for _ in range(MESSAGES):
                connection.send(payload)
                sent += 1

        rss_before = peak_rss_mb(router.process.pid)
        connection.send(f"stall {STALL_S}")
        sender = threading.Thread(target=flood, daemon=True)
        started = time.monotonic()
        sender.start()
        time.sleep(STALL_S / 2)
        sent_while_stalled = sent
        router_growth_mb = peak_rss_mb(router.process.pid) - rss_before
        sender.join(timeout=120)
        assert not sender.is_alive(), f"sent {sent} of {MESSAGES} after 120 s"
        connection.send("digest")
        digest = connection.recv(timeout=60)
    # Buffers on the way (sockets, uvicorn's few queued messages, the backend's own queue)
    # hold tens of MB at most; the rest of the flood waited for the backend.
    assert sent_while_stalled * MESSAGE_BYTES < MESSAGES * MESSAGE_BYTES / 2, (
        sent_while_stalled,
        router_growth_mb,
    )
    assert time.monotonic() - started >= STALL_S * 0.9
    assert router_growth_mb < 40, router_growth_mb
    assert digest == hashlib.sha256(payload * MESSAGES).hexdigest()  # every byte, in order


def test_a_message_over_the_limit_closes_both_sides(
    router: RunningServer, backend: ScriptedBackend
) -> None:
    before = len(backend.caller_closes)
    with realtime_session(router.url, f"model={MODEL}", max_size=None) as session:
        session.connection.send(random.Random(1).randbytes(MAX_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            session.connection.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # too big
    wait_until(lambda: len(backend.caller_closes) > before, 10, "the backend's side closed")
    assert backend.caller_closes[-1][0] == 1009


def test_a_transcription_session_goes_only_to_a_backend_that_transcribes(
    router: RunningServer,
) -> None:
    """Without ``?model=``, only backends with a transcription model take the session: the
    scripted backend has none, so the router refuses the handshake; without an intent
    either, it cannot choose at all."""
    for query, status, code in (
        ("intent=transcription", 503, "no_healthy_backend"),
        ("", 400, None),
    ):
        with pytest.raises(InvalidStatus) as caught, realtime_session(router.url, query):
            pass
        assert caught.value.response.status_code == status
        error = json.loads(caught.value.response.body or b"")["error"]
        assert error["code"] == code and error["param"] == (None if code else "model")
