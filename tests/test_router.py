"""The router in front of real engines: routing, pass-through, failover, limits, errors."""

from __future__ import annotations

import os
import signal
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import AuthenticationError, NotFoundError, OpenAI, RateLimitError
from openai.types.chat import ChatCompletionMessageParam

from tests.multipart import multipart
from tests.servers import (
    RunningServer,
    engine_server,
    metric,
    openai_client,
    peak_rss_mb,
    router_server,
    server_process,
    wait_until,
)
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER, STORY
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"


@pytest.fixture(scope="module")
def router(engines: list[RunningServer]) -> Iterator[RunningServer]:
    with router_server(*[arg for e in engines for arg in ("--backend", e.url)]) as server:
        yield server


def sdk(server: RunningServer, key: str = "unused") -> OpenAI:
    return openai_client(server.url, api_key=key, timeout=120)


def admitted_when_alone(client: OpenAI, audio: bytes) -> str:
    """Transcribe ``audio`` on an engine whose queue is smaller than it: admitted only while
    the engine holds nothing else, so a router's health check running there is waited out."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.audio.transcriptions.create(model=MODEL, file=("a.wav", audio)).text
        except RateLimitError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def concurrently(client: OpenAI, clip: bytes, count: int) -> list[str]:
    """``count`` transcriptions of ``clip``, four at a time; their texts."""

    def one(_: int) -> str:
        return client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def test_models_are_the_union_of_the_backends_with_capabilities(router: RunningServer) -> None:
    models = sdk(router).models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].capabilities["transcription"] is True  # type: ignore[attr-defined]


def test_every_field_reaches_the_backend_unchanged(
    router: RunningServer, engines: list[RunningServer], clip: bytes
) -> None:
    options = {
        "model": MODEL,
        "file": ("clip.wav", clip),
        "response_format": "verbose_json",
        "timestamp_granularities": ["word", "segment"],
        "include": ["logprobs"],
        "prompt": "Coffee order.",
        "language": "en",
        "temperature": 0.0,
    }
    direct = sdk(engines[0]).audio.transcriptions.create(**options)  # type: ignore[call-overload]
    routed = sdk(router).audio.transcriptions.create(**options)  # type: ignore[call-overload]
    assert routed.model_dump() == direct.model_dump()
    assert routed.words and routed.logprobs


def test_stream_passes_through(router: RunningServer, clip: bytes) -> None:
    events = list(
        sdk(router).audio.transcriptions.create(model=MODEL, file=("a.wav", clip), stream=True)
    )
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert word_error_rate(COFFEE_ORDER, events[-1].text) <= 0.2  # type: ignore[union-attr]


def test_model_after_the_file_still_routes(router: RunningServer, clip: bytes) -> None:
    body, content_type = multipart(
        [("file", ("a.wav", clip)), ("response_format", "text"), ("model", MODEL)]
    )
    response = httpx.post(
        f"{router.url}/v1/audio/transcriptions",
        content=body,
        headers={"content-type": content_type, "x-request-id": "req-after-file"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-after-file"
    assert word_error_rate(COFFEE_ORDER, response.text) <= 0.2


def test_requests_spread_over_the_backends(router: RunningServer, clip: bytes) -> None:
    client = sdk(router)
    before = {
        url: metric(router, "stenostack_router_requests_total", backend=url, status="200")
        for url in [b for b in _backends(router)]
    }
    assert all(word_error_rate(COFFEE_ORDER, text) <= 0.2 for text in concurrently(client, clip, 8))
    served = {
        url: metric(router, "stenostack_router_requests_total", backend=url, status="200") - count
        for url, count in before.items()
    }
    assert sum(served.values()) == 8 and all(n >= 2 for n in served.values()), served


def _backends(router: RunningServer) -> list[str]:
    return sorted(
        dict(labels)["backend"]
        for (name, labels), _ in router.metric_samples().items()
        if name == "stenostack_router_backend_healthy"
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "param"),
    [
        (multipart([("model", "no-such-model"), ("file", ("a.wav", b"RIFF"))]), None, 404, "model_not_found", "model"),
        (multipart([("file", ("a.wav", b"RIFF"))]), None, 400, None, "model"),
        ((b'{"model": "whisper-tiny.en"}', "application/json"), None, 400, "invalid_content_type", None),
        ((b"--x\r\nbroken", "multipart/form-data; boundary=zzz"), None, 400, None, None),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_errors(
    router: RunningServer,
    body: tuple[bytes, str],
    content_type: str | None,
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    content, kind = body
    response = httpx.post(
        f"{router.url}/v1/audio/transcriptions",
        content=content,
        headers={"content-type": content_type or kind},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["code"] == code and error["param"] == param
    assert response.headers["x-request-id"]


def test_json_paths_need_a_model(router: RunningServer) -> None:
    response = httpx.post(f"{router.url}/v1/chat/completions", json={"messages": []}, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    response = httpx.post(
        f"{router.url}/v1/chat/completions", json={"model": "gpt-x", "messages": []}, timeout=10
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_api_keys(engines: list[RunningServer], clip: bytes) -> None:
    with router_server(
        "--backend", engines[0].url, "--api-key", "k-one", "--api-key", "k-two"
    ) as r:
        for key in ("", "wrong", "k-one-and-more"):
            with pytest.raises(AuthenticationError) as caught:
                sdk(r, key or "x").audio.transcriptions.create(model=MODEL, file=("a.wav", clip))
            assert caught.value.code == "invalid_api_key"
        for key in ("k-one", "k-two"):
            text = sdk(r, key).audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text
            assert word_error_rate(COFFEE_ORDER, text) <= 0.2
        assert httpx.get(f"{r.url}/health", timeout=5).status_code == 200
        assert httpx.get(f"{r.url}/v1/models", timeout=5).status_code == 401


def test_per_key_rate_limits(engines: list[RunningServer], clip: bytes, tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(
        "api_keys:\n"
        "  - {key: few-requests, requests_per_minute: 2}\n"
        "  - {key: little-audio, audio_minutes_per_hour: 1}\n"
        "  - unlimited\n"
    )
    forty_seconds = wav_bytes(compose([40.0]).samples)
    with router_server("--backend", engines[0].url, "--config", str(config)) as r:
        few = sdk(r, "few-requests")
        for _ in range(2):
            few.audio.transcriptions.create(model=MODEL, file=("a.wav", clip))
        with pytest.raises(RateLimitError) as caught:
            few.audio.transcriptions.create(model=MODEL, file=("a.wav", clip))
        assert caught.value.code == "rate_limit_exceeded"
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 30

        little = sdk(r, "little-audio")
        little.audio.transcriptions.create(model=MODEL, file=("a.wav", forty_seconds))
        with pytest.raises(RateLimitError) as caught:
            little.audio.transcriptions.create(model=MODEL, file=("a.wav", forty_seconds))
        assert "audio minutes" in caught.value.message
        for _ in range(3):  # other keys are not affected
            sdk(r, "unlimited").audio.transcriptions.create(model=MODEL, file=("a.wav", clip))


def test_config_file_changes_apply_without_dropping_requests(
    engines: list[RunningServer], tmp_path: Path
) -> None:
    first, second = (engine.url for engine in engines)
    config = tmp_path / "router.yaml"
    config.write_text(f"backends: [{first}]\nhealth: {{interval_s: 0.5}}\n")
    parts: list[str | float] = [0.5]
    for sentence in STORY + STORY:
        parts += [sentence, 0.8]
    long_file = wav_bytes(compose(parts).samples)  # about 190 s
    with router_server("--config", str(config)) as r:
        assert httpx.get(f"{r.url}/ready", timeout=5).json()["backends"] == [first]
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(
                sdk(r).audio.transcriptions.create, model=MODEL, file=("long.wav", long_file)
            )
            time.sleep(0.5)
            assert not in_flight.done()
            config.write_text(f"backends: [{second}]\nhealth: {{interval_s: 0.5}}\n")
            wait_until(
                lambda: httpx.get(f"{r.url}/ready", timeout=5).json()["backends"] == [second],
                what="the reloaded backend list",
            )
            # It finished, whole, on the backend that left the list.
            assert word_error_rate(" ".join(STORY + STORY), in_flight.result().text) <= 0.4
        config.write_text("backends: not-a-list: [\n")  # a broken file changes nothing
        time.sleep(2)
        assert httpx.get(f"{r.url}/ready", timeout=5).json()["backends"] == [second]


def test_a_full_engine_answers_429_and_the_request_goes_elsewhere(clip: bytes) -> None:
    parts: list[str | float] = [0.5]
    for sentence in STORY * 3:
        parts += [sentence, 0.8]
    # About 4.5 minutes: it keeps the small queue full for the whole test.
    long_file = wav_bytes(compose(parts).samples)
    with (
        engine_server("--model", MODEL, "--max-queued-audio-seconds", "5") as full,
        engine_server("--model", MODEL) as free,
        router_server(
            "--backend", full.url, "--backend", free.url, "--routing", "round_robin"
        ) as r,
        ThreadPoolExecutor(1) as pool,
    ):
        busy = pool.submit(admitted_when_alone, sdk(full), long_file)
        wait_until(lambda: metric(full, "stenostack_requests_running") > 0, what="busy")
        for _ in range(4):  # round robin sends some of these to the full engine first
            text = sdk(r).audio.transcriptions.create(model=MODEL, file=("a.wav", clip)).text
            assert word_error_rate(COFFEE_ORDER, text) <= 0.2
        retried = metric(r, "stenostack_router_retries_total", backend=full.url, reason="429")
        assert retried >= 1
        assert metric(r, "stenostack_router_backend_ejections_total", backend=full.url) == 0
        busy.result()


def test_a_vllm_style_chat_server_behind_the_router(router: RunningServer) -> None:
    """Other OpenAI paths are routed by model too; the chat backend is a FAKE (vLLM cannot
    run here) that speaks OpenAI's chat completions, streaming included."""
    fake = Path(__file__).resolve().parent / "fake_backend.py"
    command = [sys.executable, str(fake), "--chat-model", "fake-llm"]
    with (
        server_process(command, ready_timeout=30) as llm,
        router_server("--backend", llm.url, "--backend", _backends(router)[0]) as r,
    ):
        client = sdk(r)
        assert sorted(m.id for m in client.models.list().data) == ["fake-llm", MODEL]
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
        answer = client.chat.completions.create(model="fake-llm", messages=messages)
        assert answer.choices[0].message.content == "Hello from the fake model."
        chunks = list(
            client.chat.completions.create(model="fake-llm", messages=messages, stream=True)
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        assert text == "Hello from the fake model."
        with pytest.raises(NotFoundError):
            client.chat.completions.create(model="other-llm", messages=messages)


def test_a_client_hanging_up_cancels_the_engine_work(
    router: RunningServer, engines: list[RunningServer]
) -> None:
    parts: list[str | float] = [0.5]
    for sentence in STORY * 3:
        parts += [sentence, 0.8]
    long_file = wav_bytes(compose(parts).samples)  # about 4.5 minutes

    def cancelled() -> float:
        return sum(
            metric(e, "stenostack_request_errors_total", code="client_disconnected")
            for e in engines
        )

    before = cancelled()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{router.url}/v1/audio/transcriptions",
            data={"model": MODEL},
            files={"file": ("long.wav", long_file)},
            timeout=httpx.Timeout(60, read=1.5),
        )
    wait_until(lambda: cancelled() > before, what="the engine to see the hang-up")
    wait_until(
        lambda: all(metric(e, "stenostack_requests_running") == 0 for e in engines),
        what="the engines to stop the cancelled work",
    )


def test_several_worker_processes(engines: list[RunningServer], clip: bytes) -> None:
    with router_server("--backend", engines[0].url, "--workers", "2") as r:
        children = Path(f"/proc/{r.process.pid}/task/{r.process.pid}/children").read_text()
        assert len(children.split()) >= 2
        texts = concurrently(sdk(r), clip, 8)
        assert all(word_error_rate(COFFEE_ORDER, text) <= 0.2 for text in texts)


def test_upload_over_the_router_limit(engines: list[RunningServer]) -> None:
    with router_server("--backend", engines[0].url, "--max-upload-mb", "1") as r:
        body, content_type = multipart([("model", MODEL), ("file", ("a.wav", b"\0" * 3_000_000))])
        response = httpx.post(
            f"{r.url}/v1/audio/transcriptions",
            content=body,
            headers={"content-type": content_type},
            timeout=30,
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "file_too_large"


def silent_wav_stream(seconds: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A 16-bit 16 kHz mono WAV of ``seconds`` of silence, made on the fly."""
    size = seconds * 32_000
    yield (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )
    zeros = b"\0" * chunk
    for _ in range(size // chunk):
        yield zeros
    yield b"\0" * (size % chunk)


def test_large_uploads_stream_through_in_constant_memory(clip: bytes) -> None:
    """Three 200 MB uploads at once: the router's memory stays flat (no buffering), and
    the engine's answer (too long) comes back through it."""
    with (
        engine_server("--model", MODEL, "--max-audio-seconds", "30") as engine,
        router_server("--backend", engine.url) as r,
    ):
        idle = peak_rss_mb(r.process.pid)

        def upload(_: int) -> httpx.Response:
            boundary = uuid.uuid4().hex

            def body() -> Iterator[bytes]:
                yield (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
                    f"{MODEL}\r\n--{boundary}\r\nContent-Disposition: form-data; "
                    f'name="file"; filename="long.wav"\r\n\r\n'
                ).encode()
                yield from silent_wav_stream(6250)  # 200 MB
                yield f"\r\n--{boundary}--\r\n".encode()

            return httpx.post(
                f"{r.url}/v1/audio/transcriptions",
                content=body(),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
                timeout=300,
            )

        with ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(upload, range(3)))
        assert all(resp.status_code == 400 for resp in responses), [r.text for r in responses]
        assert all(resp.json()["error"]["code"] == "audio_too_long" for resp in responses)
        grown = peak_rss_mb(r.process.pid) - idle
        assert grown < 100, f"router grew by {grown:.0f} MB"
        fds = [
            os.readlink(f"/proc/{r.process.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{r.process.pid}/fd")
        ]
        assert not [link for link in fds if link.endswith("(deleted)")]  # no spooled upload


def test_a_killed_backend_fails_no_request_and_comes_back(clip: bytes) -> None:
    with (
        engine_server("--model", MODEL) as a,
        engine_server("--model", MODEL) as b,
        engine_server("--model", MODEL) as c,
        router_server("--backend", a.url, "--backend", b.url, "--backend", c.url) as r,
    ):
        client = sdk(r)
        failures: list[Exception] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    client.audio.transcriptions.create(model=MODEL, file=("a.wav", clip))
                except Exception as exc:  # any failure is the test's failure
                    failures.append(exc)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(2)
        b.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(
            lambda: metric(r, "stenostack_router_backend_healthy", backend=b.url) == 0,
            timeout=5,
            what="the killed backend to leave rotation",
        )
        out_after = time.monotonic() - killed
        time.sleep(3)
        port = int(b.url.rsplit(":", 1)[1])
        with engine_server("--model", MODEL, port=port):
            wait_until(
                lambda: metric(r, "stenostack_router_backend_healthy", backend=b.url) == 1,
                timeout=30,
                what="the backend to be re-admitted",
            )
            served_before = metric(r, "stenostack_router_requests_total", backend=b.url)
            wait_until(
                lambda: (
                    metric(r, "stenostack_router_requests_total", backend=b.url) > served_before
                ),
                timeout=30,
                what="the re-admitted backend to get requests",
            )
        stop.set()
        for worker in workers:
            worker.join()
        assert not failures, failures[:3]
        assert out_after < 1.0, out_after

        # With every backend gone, the model is known but nobody can serve it: 503.
        a.process.send_signal(signal.SIGKILL)
        c.process.send_signal(signal.SIGKILL)
        wait_until(lambda: httpx.get(f"{r.url}/ready", timeout=5).status_code == 503)
        response = httpx.post(
            f"{r.url}/v1/audio/transcriptions",
            data={"model": MODEL},
            files={"file": ("a.wav", clip)},
            timeout=30,
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "no_healthy_backend"
        assert int(response.headers["retry-after"]) >= 1


def test_unknown_model_is_404_through_the_sdk(router: RunningServer, clip: bytes) -> None:
    with pytest.raises(NotFoundError):
        sdk(router).audio.transcriptions.create(model="whisper-9", file=("a.wav", clip))
