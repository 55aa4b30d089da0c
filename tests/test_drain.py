"""Servers told to stop (SIGTERM) lose no request. An engine behind a router, under load,
first answers new work 503 ``server_draining`` for its drain notice (the router takes it out
of rotation at once), then closes its port, finishes the long transcription it holds, closes
its realtime sessions with a reason and exits within its drain timeout, while the router
sends everything else to the engine that stays; a router finishes the request it is
relaying before it exits; and an engine restarted on its address is back at once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx
from openai import OpenAI

from tests.realtime_client import realtime_session
from tests.servers import (
    RunningServer,
    engine_server,
    free_port,
    metric,
    openai_client,
    router_server,
    wait_until,
)
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER, STORY
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"
DRAIN_TIMEOUT_S = 30.0
DRAIN_NOTICE_S = 2.0
CLOSE_SERVICE_RESTART = 1012
INFLIGHT = "stenostack_router_requests_inflight"
HEALTHY = "stenostack_router_backend_healthy"


def engine_holding_one(router: RunningServer, engines: list[RunningServer]) -> RunningServer:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for engine in engines:
            if metric(router, INFLIGHT, backend=engine.url) == 1:
                return engine
        time.sleep(0.05)
    raise AssertionError("the long request never reached an engine")


def transcribing(client: OpenAI, audio: bytes) -> tuple[threading.Thread, dict[str, str]]:
    """A transcription of ``audio`` started on a thread; its text lands in the dict."""
    result: dict[str, str] = {}

    def transcribe() -> None:
        result["text"] = client.audio.transcriptions.create(
            model=MODEL, file=("long.wav", audio)
        ).text

    thread = threading.Thread(target=transcribe)
    thread.start()
    return thread, result


def short_requests(client: OpenAI, clip: bytes, until: threading.Event) -> Counter[str]:
    """Short transcriptions back to back from four threads until ``until`` is set."""
    outcomes: Counter[str] = Counter()

    def loop() -> None:
        while not until.is_set():
            try:
                text = client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text
                outcomes["coffee" if "coffee" in text.lower() else f"wrong: {text}"] += 1
            except Exception as exc:  # every failure is counted and shown
                outcomes[f"{type(exc).__name__}: {exc}"] += 1

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_an_engine_drains_without_losing_a_request() -> None:
    story = compose([0.3, *STORY, 1.0, *STORY, 1.0, *STORY, 0.3])  # a few minutes: a long drain
    clip = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    drain = ("--drain-notice-s", str(DRAIN_NOTICE_S), "--drain-timeout-s", str(DRAIN_TIMEOUT_S))
    with (
        engine_server("--model", MODEL, *drain) as first,
        engine_server("--model", MODEL, *drain) as second,
        router_server("--backend", first.url, "--backend", second.url, "--routing", "round_robin")
        as router,
    ):  # fmt: skip
        client = openai_client(router.url, timeout=180)
        long_request, long_result = transcribing(client, wav_bytes(story.samples))
        draining = engine_holding_one(router, [first, second])
        done = threading.Event()
        outcomes: Counter[str] = Counter()
        load = threading.Thread(target=lambda: outcomes.update(short_requests(client, clip, done)))
        with realtime_session(draining.url) as live:
            assert live.recv()["type"] == "session.created"
            load.start()
            time.sleep(1)
            in_flight = metric(router, INFLIGHT, backend=draining.url)
            stopped = time.monotonic()
            os.kill(draining.process.pid, signal.SIGTERM)

            # The notice: the port stays open, new work is refused with a reason to go
            # elsewhere, the probes say it is leaving, and the router stops sending.
            refusal = httpx.post(
                f"{draining.url}/v1/audio/transcriptions",
                files={"file": ("a.wav", clip)},
                data={"model": MODEL},
                timeout=10,
            )
            assert refusal.status_code == 503, refusal.text
            assert refusal.json()["error"]["code"] == "server_draining"
            assert int(refusal.headers["retry-after"]) >= 1
            ready = httpx.get(f"{draining.url}/ready", timeout=5)
            assert (ready.status_code, ready.json()["status"]) == (503, "draining")
            health = httpx.get(f"{draining.url}/health", timeout=5)
            assert (health.status_code, health.json()["status"]) == (200, "draining")
            wait_until(
                lambda: metric(router, HEALTHY, backend=draining.url) == 0,
                timeout=DRAIN_NOTICE_S,
                what="the router to take the draining engine out of rotation",
            )
            out_of_rotation_after = time.monotonic() - stopped

            _, close = live.until_closed(timeout=DRAIN_TIMEOUT_S)
            assert close.code == CLOSE_SERVICE_RESTART
            draining.process.wait(timeout=DRAIN_NOTICE_S + DRAIN_TIMEOUT_S + 10)
            exited_after = time.monotonic() - stopped
        long_request.join(timeout=120)
        time.sleep(2)  # short requests after the engine left
        done.set()
        load.join()

        failed = sum(count for outcome, count in outcomes.items() if outcome != "coffee")
        print(
            f"drain: {in_flight:g} requests in flight at SIGTERM, {failed} of "
            f"{outcomes.total() + 1} failed, out of rotation after {out_of_rotation_after:.2f} s, "
            f"exited after {exited_after:.1f} s (notice {DRAIN_NOTICE_S:g} s + drain limit "
            f"{DRAIN_TIMEOUT_S:g} s)"
        )
        assert exited_after < DRAIN_NOTICE_S + DRAIN_TIMEOUT_S, (
            f"the engine took {exited_after:.1f} s to leave"
        )
        assert word_error_rate(story.text, long_result.get("text", "")) < 0.35, long_result
        assert set(outcomes) == {"coffee"}, outcomes
        assert outcomes["coffee"] >= 8
        # The long request finished where it was: nothing was cancelled to be sent again.
        assert metric(router, "stenostack_router_retries_total", reason="unresponsive") == 0


def test_an_engine_restarted_on_its_address_is_back_in_rotation_at_once() -> None:
    """A static backend that refused connections for a while (restarting) returns at its
    first answer: refusing is not an ejection that grows with every refused probe."""
    port = free_port()
    with engine_server("--model", MODEL, port=port) as engine:
        url = engine.url
        with router_server("--backend", url) as router:
            engine.process.terminate()
            engine.process.wait(timeout=30)
            wait_until(lambda: metric(router, HEALTHY, backend=url) == 0, what="it to leave")
            time.sleep(10)  # ten refused liveness probes
            with engine_server("--model", MODEL, port=port):
                started = time.monotonic()
                wait_until(
                    lambda: metric(router, HEALTHY, backend=url) == 1,
                    timeout=20,
                    what="the restarted engine back in rotation",
                )
                back_after = time.monotonic() - started
                text = openai_client(router.url).audio.transcriptions.create(
                    model=MODEL, file=("a.wav", wav_bytes(compose([0.3, COFFEE_ORDER]).samples))
                )
    print(f"restart: back in rotation {back_after:.2f} s after the engine was ready again")
    # Liveness (1 s) and health checks (2 s) see it again within a few seconds; an ejection
    # doubled at each refused probe would have kept it out for 16 s or more.
    assert back_after < 5, f"back in rotation only after {back_after:.1f} s"
    assert "coffee" in text.text.lower()


def test_a_router_drains_its_requests_in_flight() -> None:
    story = compose([0.3, *STORY, 1.0, *STORY, 0.3])
    with (
        engine_server("--model", MODEL) as engine,
        router_server("--backend", engine.url, "--drain-timeout-s", str(DRAIN_TIMEOUT_S))
        as router,
    ):  # fmt: skip
        client = openai_client(router.url, timeout=180)
        request, result = transcribing(client, wav_bytes(story.samples))
        engine_holding_one(router, [engine])
        time.sleep(0.5)
        stopped = time.monotonic()
        router.process.send_signal(signal.SIGTERM)
        router.process.wait(timeout=DRAIN_TIMEOUT_S + 10)
        exited_after = time.monotonic() - stopped
        request.join(timeout=10)
    assert exited_after < DRAIN_TIMEOUT_S, f"the router took {exited_after:.1f} s to leave"
    assert word_error_rate(story.text, result.get("text", "")) < 0.35, result
