"""Cross-request batching: the same words batched or alone, fair turns, backpressure, cancel.

The shared engine serves the bundled models with default scheduling. A second engine,
``small_queue``, serves whisper-tiny.en with a queue bound of a few minutes of audio, so
that one long file fills it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openai import OpenAI, RateLimitError

from tests.servers import RunningServer, engine_server, metric, openai_client, wait_until
from tests.speech import Recording, compose, wav_bytes
from tests.texts import STORY

QUEUE_BOUND_SECONDS = 200

CLIPS = [
    "Please call me back after lunch.",
    "The meeting has been moved to Thursday afternoon.",
    "Turn left at the second traffic light and park behind the bank.",
    "Our quarterly results were better than expected in every region.",
    "The train to the airport leaves every fifteen minutes.",
    "I would like a large coffee with milk and no sugar.",
    "The weather will be cold and windy for the rest of the week. Bring a coat.",
    "She finished the report and sent it to the whole team before noon.",
]


@pytest.fixture(scope="module")
def clips() -> list[bytes]:
    return [wav_bytes(compose([0.3, text, 0.3]).samples) for text in CLIPS]


@pytest.fixture(scope="module")
def story() -> Recording:
    parts: list[str | float] = [0.5]
    for sentence in STORY + STORY:
        parts += [sentence, 0.8]
    return compose(parts)


@pytest.fixture(scope="module")
def small_queue() -> Iterator[RunningServer]:
    with engine_server(
        "--model", "whisper-tiny.en",
        "--max-queued-audio-seconds", str(QUEUE_BOUND_SECONDS),
    ) as server:  # fmt: skip
        yield server


def transcribe(client: OpenAI, model: str, wav: bytes) -> dict[str, Any]:
    result = client.audio.transcriptions.create(
        model=model,
        file=("clip.wav", wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    return result.model_dump()


@pytest.mark.parametrize("model", ["whisper-tiny.en", "whisper-base"])
def test_batched_results_equal_unbatched(
    engine: RunningServer, client: OpenAI, clips: list[bytes], model: str
) -> None:
    alone = [transcribe(client, model, wav) for wav in clips]
    steps_before = metric(engine, "stenostack_batch_size_count", model=model, step="Generate")
    decodes_before = metric(engine, "stenostack_batch_size_sum", model=model, step="Generate")

    barrier = threading.Barrier(len(clips))

    def together(wav: bytes) -> dict[str, Any]:
        barrier.wait()
        return transcribe(client, model, wav)

    with ThreadPoolExecutor(max_workers=len(clips)) as pool:
        batched = list(pool.map(together, clips))

    calls = metric(engine, "stenostack_batch_size_count", model=model, step="Generate")
    decodes = metric(engine, "stenostack_batch_size_sum", model=model, step="Generate")
    assert decodes - decodes_before >= len(clips)
    # Batching happened: fewer decoder calls than windows decoded.
    assert calls - steps_before < decodes - decodes_before, (calls, decodes)
    for one, other in zip(alone, batched, strict=True):
        assert one["text"] and one["text"] == other["text"]
        assert one["segments"] == other["segments"]
        assert one["words"] == other["words"]


def test_short_request_is_not_starved_by_a_long_file(
    small_queue: RunningServer, story: Recording, clips: list[bytes]
) -> None:
    client = openai_client(small_queue.url)
    finished: dict[str, float] = {}

    def send(name: str, wav: bytes) -> str:
        text = client.audio.transcriptions.create(
            model="whisper-tiny.en", file=(f"{name}.wav", wav)
        ).text
        finished[name] = time.monotonic()
        return text

    with ThreadPoolExecutor(max_workers=2) as pool:
        long_file = pool.submit(send, "long", wav_bytes(story.samples))
        wait_until(
            lambda: metric(small_queue, "stenostack_requests_running", model="whisper-tiny.en") > 0,
            what="the long file to start",
        )
        sent = time.monotonic()
        short_text = pool.submit(send, "short", clips[0]).result()
        long_text = long_file.result()
    assert "after lunch" in short_text.lower()
    assert len(long_text.split()) > 150
    # The clip took turns with the long file's windows instead of waiting for all of them.
    assert finished["short"] < finished["long"]
    assert finished["short"] - sent < (finished["long"] - sent) / 2


def test_full_queue_answers_429_with_retry_after(
    small_queue: RunningServer, story: Recording
) -> None:
    assert story.duration > QUEUE_BOUND_SECONDS / 2
    client = openai_client(small_queue.url)
    wav = wav_bytes(story.samples)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(
            client.audio.transcriptions.create, model="whisper-tiny.en", file=("a.wav", wav)
        )
        wait_until(
            lambda: metric(small_queue, "stenostack_queued_audio_seconds") > 0,
            what="the first file to be queued",
        )
        queued = metric(small_queue, "stenostack_queued_audio_seconds")
        assert queued == pytest.approx(story.duration, abs=0.1)

        with pytest.raises(RateLimitError) as refused:
            client.audio.transcriptions.create(model="whisper-tiny.en", file=("b.wav", wav))
        response = refused.value.response
        assert response.status_code == 429
        assert 1 <= int(response.headers["retry-after"]) <= 60
        error = response.json()["error"]
        assert error["code"] == "engine_overloaded" and error["type"] == "rate_limit_error"
        assert "capacity" in error["message"] and error["param"] is None

        # The admitted request is not dropped: it finishes whole.
        assert len(first.result().text.split()) > 150
    refused_count = metric(small_queue, "stenostack_request_errors_total", code="engine_overloaded")
    assert refused_count >= 1
    # With the queue drained, the same request is served.
    assert metric(small_queue, "stenostack_queued_audio_seconds") == 0
    text = client.audio.transcriptions.create(model="whisper-tiny.en", file=("c.wav", wav)).text
    assert len(text.split()) > 150


def test_disconnect_cancels_the_remaining_work(
    small_queue: RunningServer, story: Recording
) -> None:
    wav = wav_bytes(story.samples)
    client = openai_client(small_queue.url)
    batches_before = metric(small_queue, "stenostack_batch_size_count")
    started = time.monotonic()
    client.audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", wav))
    full_time = time.monotonic() - started
    batches_after_whole = metric(small_queue, "stenostack_batch_size_count")
    whole = batches_after_whole - batches_before

    def hang_up() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{small_queue.url}/v1/audio/transcriptions",
                data={"model": "whisper-tiny.en"},
                files={"file": ("a.wav", wav, "audio/wav")},
                timeout=httpx.Timeout(30, read=full_time / 4),
            )

    hang_up()
    hung_up = time.monotonic()
    wait_until(
        lambda: metric(small_queue, "stenostack_queued_audio_seconds") == 0,
        timeout=full_time,
        what="the cancelled request to leave the queue",
    )
    wait_until(
        lambda: metric(small_queue, "stenostack_requests_running", model="whisper-tiny.en") == 0,
        timeout=full_time,
        what="the cancelled request to stop running",
    )
    assert time.monotonic() - hung_up < full_time / 2
    cancelled = metric(small_queue, "stenostack_request_errors_total", code="client_disconnected")
    assert cancelled >= 1
    # Fewer model calls ran than a whole transcription of the file needs.
    batches_used = metric(small_queue, "stenostack_batch_size_count") - batches_after_whole
    assert batches_used < whole / 2, (batches_used, whole)


def test_event_loop_stays_responsive_while_the_model_works(
    small_queue: RunningServer, story: Recording
) -> None:
    client = openai_client(small_queue.url)
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(
            client.audio.transcriptions.create,
            model="whisper-tiny.en",
            file=("a.wav", wav_bytes(story.samples)),
        )
        wait_until(
            lambda: metric(small_queue, "stenostack_requests_running", model="whisper-tiny.en") > 0,
            what="the model to be busy",
        )
        slowest = 0.0
        while not busy.done():
            started = time.monotonic()
            assert httpx.get(f"{small_queue.url}/health", timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        busy.result()
    assert slowest < 0.5, slowest


def test_scheduling_metrics_are_exposed(engine: RunningServer, client: OpenAI) -> None:
    text = httpx.get(f"{engine.url}/metrics").text
    for name in (
        "stenostack_queued_audio_seconds",
        "stenostack_requests_waiting",
        "stenostack_requests_running",
        "stenostack_batch_size_bucket",
        "stenostack_queue_duration_seconds_bucket",
    ):
        assert name in text, name
