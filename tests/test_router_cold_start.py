"""Cold start: a request for a model whose engine is scaled to zero (or still starting)
waits at the router for one to come up, counted by model so that an autoscaler wakes the
engine, instead of failing at once; a model nobody will serve is still a 404."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from tests.servers import engine_server, free_port, metric, openai_client, router_server, wait_until
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER

MODEL = "whisper-tiny.en"
WAITING = "stenostack_router_requests_waiting"


def test_a_request_waits_for_its_engine_to_come_up() -> None:
    port = free_port()
    clip = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    cold_start = ("--cold-start-model", MODEL, "--cold-start-wait-s", "120")
    with router_server(
        "--backend", f"http://127.0.0.1:{port}", *cold_start, ready_status=503
    ) as router:
        client = openai_client(router.url, timeout=180)
        result: dict[str, str] = {}
        request = threading.Thread(
            target=lambda: result.update(
                text=client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text
            )
        )
        request.start()
        wait_until(lambda: metric(router, WAITING, model=MODEL) == 1, what="the request held")

        # Held, not refused: a model nobody serves is still answered at once.
        with pytest.raises(openai.NotFoundError):
            client.audio.transcriptions.create(model="whisper-nope", file=("a.wav", clip))

        with engine_server("--model", MODEL, port=port):
            up = time.monotonic()
            request.join(timeout=60)
            served_after = time.monotonic() - up
        assert "coffee" in result.get("text", "").lower(), result
        assert metric(router, WAITING, model=MODEL) == 0
    # The router's liveness probe (1 s) and health check (2 s) see the engine within seconds.
    assert served_after < 10, f"served {served_after:.1f} s after the engine was ready"


def test_without_a_wait_a_cold_start_model_is_a_503_counted_by_name() -> None:
    clip = wav_bytes(compose([0.3, COFFEE_ORDER]).samples)
    with router_server(
        "--backend", f"http://127.0.0.1:{free_port()}", "--cold-start-model", MODEL,
        ready_status=503,
    ) as router:  # fmt: skip
        answer = httpx.post(
            f"{router.url}/v1/audio/transcriptions",
            files={"file": ("a.wav", clip)},
            data={"model": MODEL},
            timeout=30,
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "no_healthy_backend"
        assert int(answer.headers["retry-after"]) >= 1
        unknown = httpx.post(
            f"{router.url}/v1/audio/transcriptions",
            files={"file": ("a.wav", clip)},
            data={"model": "made-up-by-a-caller"},
            timeout=30,
        )
        assert unknown.status_code == 404
        requests = "stenostack_router_requests_total"
        # What an autoscaler's wake-up query counts: refusals of this model, by its name;
        # a made-up name never becomes a label.
        assert metric(router, requests, backend="none", model=MODEL, status="503") == 1
        assert metric(router, requests, backend="none", model="", status="404") == 1
