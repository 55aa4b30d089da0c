"""Faults through the router, blamed where they belong: clients that hang up, stall or send
malformed bodies are answered (or counted) as theirs and never cost a backend its place;
a frozen backend leaves rotation within seconds and its requests in flight go elsewhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.multipart import multipart
from tests.servers import (
    RunningServer,
    metric,
    openai_client,
    router_server,
    wait_until,
)
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER, STORY
from tests.uploads import hang_up_halfway, raw_request

MODEL = "whisper-tiny.en"
TRANSCRIBE = "/v1/audio/transcriptions"


def router_for(engines: list[RunningServer], *args: str) -> AbstractContextManager[RunningServer]:
    return router_server(*[arg for e in engines for arg in ("--backend", e.url)], *args)


def sdk(server: RunningServer) -> OpenAI:
    return openai_client(server.url, timeout=60)


def transcribe(client: OpenAI, clip: bytes) -> str:
    return client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text


def read_response(connection: socket.socket) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one response on ``connection`` (closed after it)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def router_answered(router: RunningServer, status: int) -> float:
    """Requests the router answered itself (no backend's answer), with ``status``."""
    return metric(router, "stenostack_router_requests_total", backend="none", status=str(status))


def assert_no_backend_blamed(router: RunningServer, engines: list[RunningServer]) -> None:
    for engine in engines:
        assert metric(router, "stenostack_router_backend_healthy", backend=engine.url) == 1
    assert metric(router, "stenostack_router_backend_ejections_total") == 0
    assert metric(router, "stenostack_router_retries_total") == 0
    for reason in ("transport", "connect"):
        assert metric(router, "stenostack_router_errors_total", reason=reason) == 0


def test_aborted_uploads_are_the_clients_and_eject_no_backend(
    engines: list[RunningServer], clip: bytes
) -> None:
    aborts = 6
    with router_for(engines) as router:
        for index in range(aborts):
            hang_up_halfway(router.url, MODEL, clip, model_first=index % 3 != 2)
        wait_until(
            lambda: router_answered(router, 499) == aborts,
            timeout=15,
            what="every hang-up to be counted as the client's (499)",
        )
        assert_no_backend_blamed(router, engines)

        client = sdk(router)
        with ThreadPoolExecutor(4) as pool:
            texts = list(pool.map(lambda _: transcribe(client, clip), range(40)))
        assert all("coffee" in text.lower() for text in texts), texts
        assert_no_backend_blamed(router, engines)
        for engine in engines:  # both still take their share
            assert metric(router, "stenostack_router_requests_total", backend=engine.url) > 0
        assert router_answered(router, 499) == aborts
        assert "Traceback" not in router.log()


def test_a_stalled_upload_is_a_408_and_blames_no_backend(
    engines: list[RunningServer], clip: bytes
) -> None:
    body, content_type = multipart([("model", MODEL), ("file", ("a.wav", clip))])
    with router_for(engines, "--body-timeout-s", "1.5") as router:
        with raw_request(router.url, body, content_type) as connection:
            connection.sendall(body[: len(body) // 2])  # then nothing: it stalls
            started = time.monotonic()
            status, error = read_response(connection)
            waited = time.monotonic() - started
        assert status == 408
        assert error["error"]["code"] == "request_timeout"
        assert 1.0 < waited < 10, waited
        assert router_answered(router, 408) == 1
        assert_no_backend_blamed(router, engines)
        assert "coffee" in transcribe(sdk(router), clip).lower()
        assert "Traceback" not in router.log()


def with_boundary(
    router: RunningServer, body: bytes, boundary: str, replacement: str, timeout: float
) -> httpx.Response:
    """The answer to the multipart ``body`` sent with ``replacement`` for its boundary."""
    return httpx.post(
        f"{router.url}{TRANSCRIBE}",
        content=body.replace(boundary.encode(), replacement.encode()),
        headers={"content-type": f"multipart/form-data; boundary={replacement}"},
        timeout=timeout,
    )


def test_malformed_and_oversized_bodies_are_the_clients(
    engines: list[RunningServer], clip: bytes
) -> None:
    body, content_type = multipart([("model", MODEL), ("file", ("a.wav", clip))])
    boundary = content_type.split("boundary=")[1]
    with router_for(engines, "--max-upload-mb", "1") as router:
        for length in (5000, 71):
            response = with_boundary(router, body, boundary, "b" * length, timeout=30)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["type"] == "invalid_request_error"
            assert str(length) in response.json()["error"]["message"]
        garbled = httpx.post(
            f"{router.url}{TRANSCRIBE}",
            content=b"--" + boundary.encode() + b"\r\n\x00\x01 not a part header\r\n\r\n" * 50,
            headers={"content-type": content_type},
            timeout=30,
        )
        assert garbled.status_code == 400, garbled.text
        # The longest boundary RFC 2046 allows is fine.
        response = with_boundary(router, body, boundary, "c" * 70, timeout=60)
        assert response.status_code == 200, response.text
        assert "coffee" in response.json()["text"].lower()
        assert router_answered(router, 400) == 1  # the garbled form; boundaries are refused earlier

        # Sent without a length, the upload is already streaming upstream when it is too large.
        too_large, too_large_type = multipart([("model", MODEL), ("file", ("a.wav", clip * 20))])
        pieces = (too_large[start : start + 65536] for start in range(0, len(too_large), 65536))
        response = httpx.post(
            f"{router.url}{TRANSCRIBE}",
            content=pieces,
            headers={"content-type": too_large_type},
            timeout=30,
        )
        assert response.status_code == 413, response.text
        assert router_answered(router, 413) == 1
        assert_no_backend_blamed(router, engines)
        assert "Traceback" not in router.log()


@contextmanager
def frozen(engine: RunningServer) -> Iterator[float]:
    """``engine`` stopped (SIGSTOP) for the block; yields when it was stopped."""
    os.kill(engine.process.pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        os.kill(engine.process.pid, signal.SIGCONT)


def in_rotation(router: RunningServer, engine: RunningServer) -> bool:
    return metric(router, "stenostack_router_backend_healthy", backend=engine.url) == 1


@pytest.mark.parametrize("routing", ["round_robin", "least_load"])
def test_a_frozen_backend_leaves_rotation_and_its_requests_go_elsewhere(
    engines: list[RunningServer], clip: bytes, routing: str
) -> None:
    stopped_engine = engines[0]
    with router_for(engines, "--routing", routing) as router:
        client = sdk(router)
        for _ in range(4):  # warm both engines up
            transcribe(client, clip)
        latencies: list[float] = []

        def timed(_: int) -> str:
            started = time.monotonic()
            text = transcribe(client, clip)
            latencies.append(time.monotonic() - started)
            return text

        with frozen(stopped_engine) as stopped, ThreadPoolExecutor(4) as pool:
            # Sent at once, some land on the frozen engine before anyone knows.
            in_flight = [pool.submit(timed, index) for index in range(4)]
            wait_until(
                lambda: not in_rotation(router, stopped_engine),
                timeout=15,
                what="the frozen engine to leave rotation",
            )
            detected_s = time.monotonic() - stopped
            texts = [future.result(timeout=60) for future in in_flight]
            sent_there = metric(
                router, "stenostack_router_errors_total", backend=stopped_engine.url
            )
            texts += list(pool.map(timed, range(8)))
            # No policy sends anything more to it while it is out.
            assert (
                metric(router, "stenostack_router_errors_total", backend=stopped_engine.url)
                == sent_there
            )
        assert detected_s < 6, detected_s
        assert all("coffee" in text.lower() for text in texts), texts
        assert max(latencies) < 10, latencies
        retried = metric(
            router,
            "stenostack_router_retries_total",
            backend=stopped_engine.url,
            reason="unresponsive",
        )
        assert retried >= 1
        assert metric(router, "stenostack_router_backend_unresponsive_total") >= 1
        wait_until(
            lambda: in_rotation(router, stopped_engine),
            timeout=30,
            what="the engine to come back once it runs again",
        )


def test_a_request_that_cannot_be_replayed_fails_fast_on_a_frozen_backend(
    engines: list[RunningServer], clip: bytes, tmp_path: Path
) -> None:
    config = tmp_path / "router.yaml"
    config.write_text("retries:\n  replay_buffer_bytes: 1000\n")  # nothing can be replayed
    stopped_engine = engines[0]
    with router_for([stopped_engine], "--config", str(config)) as router:
        transcribe(sdk(router), clip)
        # Larger than the socket buffers: the upload is still being streamed when it freezes.
        big = wav_bytes(compose([0.3, COFFEE_ORDER, 60.0, COFFEE_ORDER, 0.3]).samples)
        outcome: list[httpx.Response] = []

        def upload() -> None:
            outcome.append(
                httpx.post(
                    f"{router.url}{TRANSCRIBE}",
                    data={"model": MODEL},
                    files={"file": ("big.wav", big)},
                    timeout=60,
                )
            )

        with frozen(stopped_engine) as stopped:
            sender = threading.Thread(target=upload)
            sender.start()
            sender.join(timeout=30)
            answered_s = time.monotonic() - stopped
        assert outcome, "no answer within 30 s"
        response = outcome[0]
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "backend_unresponsive"
        assert answered_s < 8, answered_s


def test_a_stream_from_a_backend_that_freezes_is_cut_off_not_held(
    engines: list[RunningServer],
) -> None:
    parts: list[str | float] = [0.5]
    for sentence in STORY * 3:
        parts += [sentence, 0.8]
    long_file = wav_bytes(compose(parts).samples)  # about 4.5 minutes: many events
    stopped_engine = engines[0]
    with router_for([stopped_engine]) as router:
        with httpx.stream(
            "POST",
            f"{router.url}{TRANSCRIBE}",
            data={"model": MODEL, "stream": "true"},
            files={"file": ("long.wav", long_file)},
            timeout=httpx.Timeout(60, read=20),
        ) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert "transcript.text.delta" in next(line for line in lines if line)
            with frozen(stopped_engine) as stopped, pytest.raises(httpx.RemoteProtocolError):
                for _ in lines:  # what the engine had sent before it froze, then the cut
                    pass
            cut_after_s = time.monotonic() - stopped
        assert cut_after_s < 8, cut_after_s
        assert (
            metric(
                router, "stenostack_router_requests_total", backend=stopped_engine.url, status="502"
            )
            == 1
        )


def test_a_busy_engine_is_not_taken_for_a_frozen_one(
    engines: list[RunningServer], clip: bytes
) -> None:
    parts: list[str | float] = [0.5]
    for sentence in STORY * 3:
        parts += [sentence, 0.8]
    long_file = wav_bytes(compose(parts).samples)
    with router_for(engines) as router:
        client = sdk(router)
        with ThreadPoolExecutor(4) as pool:
            long_ones = [pool.submit(transcribe, client, long_file) for _ in range(2)]
            short_ones = list(pool.map(lambda _: transcribe(client, clip), range(12)))
            assert all("coffee" in text.lower() for text in short_ones)
            assert all(len(future.result(timeout=120).split()) > 100 for future in long_ones)
        assert metric(router, "stenostack_router_backend_unresponsive_total") == 0
        assert metric(router, "stenostack_router_retries_total") == 0
