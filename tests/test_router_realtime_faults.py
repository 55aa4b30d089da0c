"""A realtime session proxied to an engine that freezes is closed within seconds, not held
open in silence; the next session goes to the engine that still answers."""

from __future__ import annotations

import os
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.realtime_client import realtime_session
from tests.servers import RunningServer, engine_server, metric, router_server, wait_until

MODEL = "whisper-tiny.en"
CLOSE_BAD_GATEWAY = 1014
# Liveness probes every 1 s with 2 s to answer: the router notices a freeze in about 3 s.
DETECTION_BOUND_S = 8.0
INFLIGHT = "stenostack_router_requests_inflight"


def holding_engine(router: RunningServer, engines: list[RunningServer]) -> RunningServer:
    """The engine the router relays the one open session to."""
    wait_until(
        lambda: any(metric(router, INFLIGHT, backend=e.url) == 1 for e in engines),
        what="the session to be in flight on an engine",
    )
    return next(e for e in engines if metric(router, INFLIGHT, backend=e.url) == 1)


def test_a_session_on_a_frozen_engine_is_closed_and_the_next_goes_elsewhere() -> None:
    with (
        engine_server("--model", MODEL) as first,
        engine_server("--model", MODEL) as second,
        router_server("--backend", first.url, "--backend", second.url) as router,
        realtime_session(router.url) as session,
    ):
        assert session.recv()["type"] == "session.created"
        frozen = holding_engine(router, [first, second])
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    session.recv(timeout=DETECTION_BOUND_S * 2)
            waited = time.monotonic() - stopped
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CLOSE_BAD_GATEWAY
            assert "stopped responding" in closed.value.rcvd.reason
            assert waited < DETECTION_BOUND_S, f"closed only after {waited:.1f} s"
            with realtime_session(router.url) as next_session:
                assert next_session.recv()["type"] == "session.created"
                other = second if frozen is first else first
                wait_until(
                    lambda: metric(router, INFLIGHT, backend=other.url) == 1,
                    what="the next session to go to the engine that answers",
                )
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
