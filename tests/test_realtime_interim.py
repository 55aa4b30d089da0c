"""Interim results: text of a realtime turn while it is still spoken (this server's
extension), against a real engine, with real speech sent at real-time pace."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.realtime_client import RealtimeClient, realtime_session
from tests.servers import RunningServer, engine_server, metric
from tests.speech import compose, raw_pcm
from tests.texts import COFFEE_ORDER, MEETING_MOVED
from tests.wer import normalise, word_error_rate

MODEL = "whisper-tiny.en"
SPOKEN = f"{COFFEE_ORDER} {MEETING_MOVED}"
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
CHUNK_S = 0.1
CHUNK_BYTES = 4800  # 100 ms of 24 kHz PCM16


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningServer]:
    with engine_server("--model", MODEL) as server:
        yield server


@pytest.fixture(scope="module")
def utterance() -> bytes:
    """About 8 s of speech in one turn: the sentences follow each other with no more pause
    than espeak makes, less than the 500 ms of silence that ends a turn."""
    return raw_pcm(compose([0.5, COFFEE_ORDER, MEETING_MOVED, 1.5]).samples)


def transcription(**extension: Any) -> dict[str, Any]:
    """A session.update choosing the model, with ``extension`` fields beside it."""
    settings = {"model": MODEL, **extension}
    return {"type": "transcription", "audio": {"input": {"transcription": settings}}}


def stream_in_real_time(session: RealtimeClient, audio: bytes) -> list[dict[str, Any]]:
    """Send ``audio`` in 100 ms pieces, each when it would have been spoken; return the
    events of the turn, up to its ``conversation.item.done``."""
    started = time.monotonic()
    for index, start in enumerate(range(0, len(audio), CHUNK_BYTES)):
        time.sleep(max(started + index * CHUNK_S - time.monotonic(), 0))
        session.append(audio[start : start + CHUNK_BYTES], chunk_bytes=CHUNK_BYTES)
    return session.until("conversation.item.done")


def test_interim_text_arrives_while_the_turn_is_spoken(
    engine: RunningServer, utterance: bytes
) -> None:
    requests_before = metric(engine, "stenostack_requests_total", endpoint="realtime")
    with realtime_session(engine.url) as session:
        session.recv()
        session.send(
            "session.update", session=transcription(interim_results=True, interim_interval_ms=300)
        )
        shown = session.recv()["session"]["audio"]["input"]["transcription"]
        assert (shown["interim_results"], shown["interim_interval_ms"]) == (True, 300)
        events = stream_in_real_time(session, utterance)
    kinds = [event["type"] for event in events]
    item = events[kinds.index("input_audio_buffer.speech_started")]["item_id"]
    deltas = [event for event in events if event["type"] == DELTA]
    # Text came while the turn was spoken: before the server heard it end.
    assert DELTA in kinds[: kinds.index("input_audio_buffer.speech_stopped")], kinds
    assert all((d["item_id"], d["content_index"]) == (item, 0) for d in deltas)
    assert kinds.count(COMPLETED) == 1 and kinds.index(COMPLETED) > kinds.index(DELTA)

    completed = events[kinds.index(COMPLETED)]["transcript"]
    joined = "".join(delta["delta"] for delta in deltas)
    # What was sent while speaking leads up to the final text, which replaces it.
    assert normalise(completed).startswith(normalise(joined)), (joined, completed)
    assert word_error_rate(SPOKEN, completed) <= 0.3, completed
    # The passes were model work, but the turn is still one request.
    assert metric(engine, "stenostack_realtime_interim_passes_total", outcome="completed") >= 2
    assert metric(engine, "stenostack_requests_total", endpoint="realtime") == requests_before + 1


def test_whisper_sends_no_interim_text_by_default(engine: RunningServer, utterance: bytes) -> None:
    """Whisper pads every pass to 30 s, so it re-transcribes nothing unless asked."""
    with realtime_session(engine.url) as session:
        session.recv()
        session.send("session.update", session=transcription())
        shown = session.recv()["session"]["audio"]["input"]["transcription"]
        assert "interim_results" not in shown  # a client not asking sees OpenAI's fields
        events = stream_in_real_time(session, utterance)
    kinds = [event["type"] for event in events]
    committed = kinds.index("input_audio_buffer.committed")
    assert DELTA not in kinds[:committed] and DELTA in kinds[committed:], kinds
    joined = "".join(event["delta"] for event in events if event["type"] == DELTA)
    assert joined == events[kinds.index(COMPLETED)]["transcript"]


BAD_VALUES: list[tuple[str, Any]] = [
    ("interim_interval_ms", 50),
    ("interim_interval_ms", 60_000),
    ("interim_interval_ms", "400"),
    ("interim_interval_ms", 400.5),
    ("interim_results", "yes"),
    ("interim_results", 1),
]


def test_bad_interim_settings_get_error_events_and_the_session_goes_on(
    engine: RunningServer,
) -> None:
    with realtime_session(engine.url) as session:
        session.recv()
        for name, value in BAD_VALUES:
            session.send("session.update", session=transcription(**{name: value}))
            error = session.recv()
            assert error["type"] == "error", (name, value, error)
            assert error["error"]["code"] == "invalid_value"
            assert error["error"]["param"] == f"session.audio.input.transcription.{name}"

        session.send("session.update", session=transcription(interim_interval_ms=1000))
        shown = session.recv()["session"]["audio"]["input"]["transcription"]
        assert (shown["interim_results"], shown["interim_interval_ms"]) == (False, 1000)
        # null puts a setting back to its default; both at their defaults, neither shows.
        reset = transcription(interim_results=None, interim_interval_ms=None)
        session.send("session.update", session=reset)
        shown = session.recv()["session"]["audio"]["input"]["transcription"]
        assert shown == {"model": MODEL, "language": None, "prompt": ""}
