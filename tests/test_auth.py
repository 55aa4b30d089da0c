"""API keys on the engine and the router, and what the router proxies behind them: the
models by id and the realtime WebSocket.

One engine requires keys (from the command line, a key file and the environment); one
router requires its callers' keys and reaches that engine with its own backend key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AuthenticationError, NotFoundError
from websockets.exceptions import InvalidStatus

from tests.realtime_client import realtime_session
from tests.servers import (
    RunningServer,
    async_openai_client,
    openai_client,
    router_server,
    server_process,
)
from tests.speech import compose, raw_pcm
from tests.texts import COFFEE_ORDER
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"
FLAG_KEY = "engine-flag-key-6f1c"
FILE_KEY = "engine-file-key-93ab"
ENV_KEY = "engine-env-key-27de"
CALLER_KEY = "router-caller-key-5b07"
TINY_SESSION = {"type": "transcription", "audio": {"input": {"transcription": {"model": MODEL}}}}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text(f"# rotated monthly\n\n  {FILE_KEY}  \n")
    command = [sys.executable, "-m", "stenostack", "serve", "--log-level", "warning"]
    with server_process(
        [*command, "--model", MODEL, "--api-key", FLAG_KEY, "--api-key-file", str(key_file)],
        env={"STENOSTACK_API_KEYS": f" {ENV_KEY} ,other-env-key"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_router(keyed_engine: RunningServer) -> Iterator[RunningServer]:
    with router_server(
        "--backend", keyed_engine.url, "--api-key", CALLER_KEY, "--backend-api-key", FLAG_KEY
    ) as server:
        yield server


def transcribe(url: str, key: str, clip: bytes) -> str:
    client = openai_client(url, api_key=key, timeout=120)
    return client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text


def refused_handshake(url: str, query: str, **options: Any) -> InvalidStatus:
    """The refusal of a realtime handshake that must not be accepted."""
    with pytest.raises(InvalidStatus) as caught, realtime_session(url, query, **options):
        pass
    return caught.value


def assert_invalid_api_key(status: int, body: bytes | str) -> None:
    assert status == 401
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"


async def sdk_realtime_transcript(url: str, key: str, pcm: bytes) -> str:
    """One turn through the official SDK's realtime client; its completed transcript."""
    client = async_openai_client(url, api_key=key)
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        assert (await connection.recv()).type == "session.created"
        await connection.session.update(session=TINY_SESSION)  # type: ignore[arg-type]
        assert (await connection.recv()).type == "session.updated"
        for start in range(0, len(pcm), 4800):  # 100 ms pieces
            piece = base64.b64encode(pcm[start : start + 4800]).decode()
            await connection.input_audio_buffer.append(audio=piece)
        while True:
            event = await connection.recv()
            if event.type == "conversation.item.input_audio_transcription.completed":
                return event.transcript


@pytest.fixture(scope="module")
def spoken_turn() -> bytes:
    return raw_pcm(compose([0.6, COFFEE_ORDER, 1.5], noise_level=0.002).samples)


# -- the engine ---------------------------------------------------------------------------


def test_engine_sdk_needs_a_key(keyed_engine: RunningServer, clip: bytes) -> None:
    for key in ("", "wrong", FLAG_KEY[:-1], FLAG_KEY + "x"):
        with pytest.raises(AuthenticationError) as caught:
            transcribe(keyed_engine.url, key or "x", clip)
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        assert caught.value.type == "invalid_request_error"
        assert caught.value.response.headers["www-authenticate"] == "Bearer"
    assert word_error_rate(COFFEE_ORDER, transcribe(keyed_engine.url, FLAG_KEY, clip)) <= 0.2


def test_engine_takes_keys_from_flag_file_and_environment(keyed_engine: RunningServer) -> None:
    for key in (FLAG_KEY, FILE_KEY, ENV_KEY, "other-env-key"):
        answer = httpx.get(f"{keyed_engine.url}/v1/models", headers=bearer(key), timeout=10)
        assert answer.status_code == 200, key
        assert [model["id"] for model in answer.json()["data"]] == [MODEL]
    for key in ("# rotated monthly", ENV_KEY.upper(), f"{FILE_KEY},{ENV_KEY}"):
        answer = httpx.get(f"{keyed_engine.url}/v1/models", headers=bearer(key), timeout=10)
        assert_invalid_api_key(answer.status_code, answer.text)


def test_engine_probes_open_and_quiet_the_rest_closed(keyed_engine: RunningServer) -> None:
    url = keyed_engine.url
    assert httpx.get(f"{url}/health", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    told = httpx.get(f"{url}/ready", headers=bearer(FLAG_KEY), timeout=10).json()
    assert told == {"status": "ready", "models": [MODEL]}
    for path in ("/metrics", "/version", "/v1/models", f"/v1/models/{MODEL}", "/openapi.json"):
        answer = httpx.get(f"{url}{path}", timeout=10)
        assert_invalid_api_key(answer.status_code, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
    metrics = httpx.get(f"{url}/metrics", headers=bearer(ENV_KEY), timeout=10)
    assert metrics.status_code == 200 and "stenostack_queued_audio_seconds" in metrics.text


def test_engine_realtime_refused_without_a_key(
    keyed_engine: RunningServer, spoken_turn: bytes
) -> None:
    url = keyed_engine.url
    for headers in ({}, bearer("wrong")):
        refusal = refused_handshake(url, "intent=transcription", additional_headers=headers)
        assert_invalid_api_key(refusal.response.status_code, refusal.response.body or b"")
    with pytest.raises(InvalidStatus) as caught:
        asyncio.run(asyncio.wait_for(sdk_realtime_transcript(url, "wrong", spoken_turn), 60))
    assert_invalid_api_key(caught.value.response.status_code, caught.value.response.body or b"")
    transcript = asyncio.run(
        asyncio.wait_for(sdk_realtime_transcript(url, FILE_KEY, spoken_turn), 120)
    )
    assert word_error_rate(COFFEE_ORDER, transcript) <= 0.35


def test_engine_realtime_key_as_browser_subprotocol(keyed_engine: RunningServer) -> None:
    """Browsers cannot set headers on a WebSocket: OpenAI's clients send the key as a
    subprotocol, and the server answers with the "realtime" one."""
    offered = ["realtime", f"openai-insecure-api-key.{FLAG_KEY}"]
    with realtime_session(keyed_engine.url, subprotocols=offered) as session:
        assert session.recv()["type"] == "session.created"
        assert session.connection.subprotocol == "realtime"
    wrong = ["realtime", "openai-insecure-api-key.wrong"]
    refusal = refused_handshake(keyed_engine.url, "intent=transcription", subprotocols=wrong)
    assert refusal.response.status_code == 401


# -- the router ---------------------------------------------------------------------------


def test_router_transcribes_through_a_keyed_engine(
    keyed_router: RunningServer, clip: bytes
) -> None:
    """Health checks and requests reach the engine with the router's own key; callers use
    theirs, and the engine's key is not one of them."""
    assert word_error_rate(COFFEE_ORDER, transcribe(keyed_router.url, CALLER_KEY, clip)) <= 0.2
    for key in ("", FLAG_KEY):
        with pytest.raises(AuthenticationError) as caught:
            transcribe(keyed_router.url, key or "x", clip)
        assert caught.value.code == "invalid_api_key"


def test_router_metrics_and_ready_keep_backends_to_callers_with_keys(
    keyed_router: RunningServer, keyed_engine: RunningServer
) -> None:
    url = keyed_router.url
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    ready = httpx.get(f"{url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    assert keyed_engine.url.split("//")[1] not in ready.text
    told = httpx.get(f"{url}/ready", headers=bearer(CALLER_KEY), timeout=10).json()
    assert told == {"ready": True, "backends": [keyed_engine.url]}
    for headers in ({}, bearer("wrong")):
        answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
        assert_invalid_api_key(answer.status_code, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
    metrics = httpx.get(f"{url}/metrics", headers=bearer(CALLER_KEY), timeout=10)
    assert metrics.status_code == 200
    assert f'stenostack_router_backend_healthy{{backend="{keyed_engine.url}"}} 1.0' in metrics.text


def test_router_answers_a_model_by_id(keyed_router: RunningServer) -> None:
    client = openai_client(keyed_router.url, api_key=CALLER_KEY, strict=True)
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.object == "model"
    with pytest.raises(NotFoundError) as caught:
        client.models.retrieve("whisper-huge-v9")
    assert caught.value.code == "model_not_found"
    assert caught.value.type == "invalid_request_error"
    with pytest.raises(AuthenticationError):
        openai_client(keyed_router.url, api_key="wrong").models.retrieve(MODEL)


def test_router_realtime_session_through_the_sdk(
    keyed_router: RunningServer, spoken_turn: bytes
) -> None:
    """``?intent=transcription`` without a model: the router picks an engine itself."""
    transcript = asyncio.run(
        asyncio.wait_for(sdk_realtime_transcript(keyed_router.url, CALLER_KEY, spoken_turn), 120)
    )
    assert word_error_rate(COFFEE_ORDER, transcript) <= 0.35


def test_router_realtime_refused_without_a_key(
    keyed_router: RunningServer, spoken_turn: bytes
) -> None:
    url = keyed_router.url
    for headers in ({}, bearer("wrong"), bearer(FLAG_KEY)):
        refusal = refused_handshake(url, "intent=transcription", additional_headers=headers)
        assert_invalid_api_key(refusal.response.status_code, refusal.response.body or b"")
    with pytest.raises(InvalidStatus) as caught:
        asyncio.run(asyncio.wait_for(sdk_realtime_transcript(url, "wrong", spoken_turn), 60))
    assert caught.value.response.status_code == 401
    unknown = refused_handshake(
        url, "intent=transcription&model=whisper-huge-v9", additional_headers=bearer(CALLER_KEY)
    )
    assert unknown.response.status_code == 404
    assert json.loads(unknown.response.body or b"")["error"]["code"] == "model_not_found"


def test_router_realtime_key_as_browser_subprotocol(keyed_router: RunningServer) -> None:
    """The caller's key as a subprotocol opens the router; the engine gets the router's."""
    offered = ["realtime", f"openai-insecure-api-key.{CALLER_KEY}"]
    with realtime_session(keyed_router.url, subprotocols=offered) as session:
        assert session.recv()["type"] == "session.created"
        assert session.connection.subprotocol == "realtime"


def test_router_realtime_routes_by_model_and_passes_the_close(
    keyed_router: RunningServer,
) -> None:
    """With ``?model=``, manual commits work through the router; and when the engine closes
    a session (here: no transcription intent), its error event, close code and reason reach
    the caller unchanged."""
    headers = bearer(CALLER_KEY)
    turn = raw_pcm(compose([0.4, COFFEE_ORDER, 0.4]).samples)
    query = f"intent=transcription&model={MODEL}"
    with realtime_session(keyed_router.url, query, additional_headers=headers) as session:
        session.recv()
        manual = {"transcription": {"model": MODEL}, "turn_detection": None}
        session.send(
            "session.update", session={"type": "transcription", "audio": {"input": manual}}
        )
        session.recv()
        session.append(turn)
        session.send("input_audio_buffer.commit")
        events = session.until("conversation.item.input_audio_transcription.completed")
    assert word_error_rate(COFFEE_ORDER, events[-1]["transcript"]) <= 0.35

    with realtime_session(keyed_router.url, f"model={MODEL}", additional_headers=headers) as bare:
        events, close = bare.until_closed()
    assert [(e["type"], e["error"]["code"]) for e in events] == [("error", "unsupported_intent")]
    assert close.code == 1008
    assert "intent=transcription" in close.reason


def test_engine_key_file_must_hold_a_key(tmp_path: Path) -> None:
    """An empty key file would leave the engine open: it refuses to start instead."""
    empty = tmp_path / "keys.txt"
    empty.write_text("# none yet\n\n")
    result = subprocess.run(
        [sys.executable, "-m", "stenostack", "serve", "--api-key-file", str(empty)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no keys" in result.stderr
