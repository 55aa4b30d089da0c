"""Live transcription over ``/v1/realtime?intent=transcription``, with real speech.

The first test drives the endpoint with the official SDK's realtime client; the rest use a
plain WebSocket client (so they can also send what the SDK never would), and check every
server event against the SDK's types.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from stenostack.audio.turns import FRAME_SAMPLES, StreamingVad
from tests.faulty_model import failing_engine
from tests.realtime_client import RealtimeClient, realtime_session
from tests.servers import RunningServer, async_openai_client, metric, wait_until
from tests.speech import Recording, compose, raw_pcm
from tests.texts import STORY
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"
FIRST = "I would like a large coffee with milk and no sugar."
SECOND = "The meeting has been moved to Thursday afternoon."
TINY = {"type": "transcription", "audio": {"input": {"transcription": {"model": MODEL}}}}


@pytest.fixture(scope="module")
def two_turns() -> Recording:
    return compose([0.6, FIRST, 1.5, SECOND, 1.5], noise_level=0.002)


def by_item(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if "item_id" in event:
            items[event["item_id"]].append(event)
        elif "item" in event:
            items[event["item"]["id"]].append(event)
    return items


ITEM_ORDER_VAD = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
]
ITEM_END = ["conversation.item.input_audio_transcription.completed", "conversation.item.done"]
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def check_item(events: list[dict[str, Any]], head: list[str], expected_text: str) -> None:
    """One item's events: ``head``, one or more deltas, completed, done; deltas = text."""
    kinds = [event["type"] for event in events]
    deltas = kinds[len(head) : -2]
    assert kinds[: len(head)] == head and kinds[-2:] == ITEM_END, kinds
    assert deltas and set(deltas) == {DELTA}, kinds
    completed = events[-2]
    joined = "".join(event["delta"] for event in events[len(head) : -2])
    assert joined == completed["transcript"] == events[-1]["item"]["content"][0]["transcript"]
    assert word_error_rate(expected_text, completed["transcript"]) <= 0.35, completed
    assert completed["usage"]["type"] == "duration" and completed["usage"]["seconds"] > 0


def test_sdk_session_transcribes_each_turn(engine: RunningServer, two_turns: Recording) -> None:
    """The SDK connects, configures the session, streams PCM16 and reads both turns."""
    pcm = raw_pcm(two_turns.samples)

    async def run() -> list[Any]:
        client = async_openai_client(engine.url)
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            created = await conn.recv()
            assert created.type == "session.created"
            await conn.session.update(session=TINY)  # type: ignore[arg-type]
            updated = await conn.recv()
            assert updated.type == "session.updated"
            for start in range(0, len(pcm), 4800):  # 100 ms pieces
                piece = base64.b64encode(pcm[start : start + 4800]).decode()
                await conn.input_audio_buffer.append(audio=piece)
            received: list[Any] = []
            while sum(e.type == "conversation.item.done" for e in received) < 2:
                received.append(await conn.recv())
            return received

    received = asyncio.run(asyncio.wait_for(run(), timeout=120))
    events = [event.model_dump(exclude_unset=True) for event in received]
    items = list(by_item(events).values())
    assert len(items) == 2
    for item, text, utterance in zip(items, [FIRST, SECOND], two_turns.utterances, strict=True):
        check_item(item, ITEM_ORDER_VAD, text)
        started, stopped = item[0]["audio_start_ms"], item[1]["audio_end_ms"]
        # Speech found where it is: the start reaches back by the 300 ms prefix padding.
        assert utterance.start * 1000 - 450 <= started <= utterance.start * 1000 + 100
        assert utterance.end * 1000 - 600 <= stopped <= utterance.end * 1000 + 900
    assert items[0][2]["previous_item_id"] is None
    assert items[1][2]["previous_item_id"] == items[0][2]["item_id"]


def test_session_created_and_partial_updates(engine: RunningServer) -> None:
    with realtime_session(engine.url) as session:
        created = session.recv()
        assert created["type"] == "session.created"
        audio_input = created["session"]["audio"]["input"]
        assert created["session"]["type"] == "transcription"
        assert audio_input["format"] == {"type": "audio/pcm", "rate": 24000}
        assert audio_input["transcription"]["model"] == "whisper-1"
        assert audio_input["turn_detection"] == {
            "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
        }  # fmt: skip
        assert audio_input["noise_reduction"] is None

        session.send("session.update", session={
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": MODEL, "language": "EN"},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}},
        })  # fmt: skip
        updated = session.recv()["session"]["audio"]["input"]
        assert updated["transcription"] == {"model": MODEL, "language": "en", "prompt": ""}
        assert updated["turn_detection"]["silence_duration_ms"] == 800
        assert updated["turn_detection"]["threshold"] == 0.5  # untouched fields stay

        # Only what an update names changes; null turns a feature off.
        session.send("session.update", session={
            "type": "transcription",
            "audio": {"input": {"turn_detection": None}},
            "include": ["item.input_audio_transcription.logprobs"],
        })  # fmt: skip
        updated_session = session.recv()["session"]
        assert updated_session["audio"]["input"]["turn_detection"] is None
        assert updated_session["audio"]["input"]["transcription"]["model"] == MODEL
        assert updated_session["include"] == ["item.input_audio_transcription.logprobs"]


def test_manual_commits_without_server_vad(engine: RunningServer) -> None:
    recording = compose([0.4, SECOND, 0.4])
    with realtime_session(engine.url) as session:
        session.recv()
        session.send("session.update", session={
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": MODEL}, "turn_detection": None}},
            "include": ["item.input_audio_transcription.logprobs"],
        })  # fmt: skip
        session.recv()
        session.send("input_audio_buffer.commit", event_id="evt_empty")
        error = session.recv()
        assert error["type"] == "error"
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "evt_empty"

        session.append(raw_pcm(recording.samples))
        session.send("input_audio_buffer.clear")
        assert session.recv()["type"] == "input_audio_buffer.cleared"

        session.append(raw_pcm(recording.samples))
        session.send("input_audio_buffer.commit")
        events = session.until("conversation.item.done")
    check_item(events, ["input_audio_buffer.committed", "conversation.item.added"], SECOND)
    completed = events[-2]
    tokens = "".join(entry["token"] for entry in completed["logprobs"])
    assert tokens.strip() == completed["transcript"]
    assert all(entry["logprob"] <= 0 for entry in completed["logprobs"])
    assert all("logprobs" in event for event in events if event["type"] == DELTA)


@pytest.mark.parametrize(("audio_format", "rate", "encoding"), [
    ({"type": "audio/pcmu"}, 8000, "mu-law"),
    ({"type": "audio/pcma"}, 8000, "a-law"),
    ({"type": "audio/pcm", "rate": 16000}, 16000, "signed"),
])  # fmt: skip
def test_other_input_formats(
    engine: RunningServer, audio_format: dict[str, Any], rate: int, encoding: str
) -> None:
    recording = compose([0.5, FIRST, 1.2])
    with realtime_session(engine.url) as session:
        session.recv()
        session.send("session.update", session={
            "type": "transcription",
            "audio": {"input": {"format": audio_format, "transcription": {"model": MODEL}}},
        })  # fmt: skip
        # The SDK's types list 24 kHz as PCM's only rate; 16 kHz is this server's extension.
        updated = session.recv(sdk_types=rate != 16000)
        assert updated["session"]["audio"]["input"]["format"] == audio_format
        audio = raw_pcm(recording.samples, rate=rate, encoding=encoding)
        session.append(audio, chunk_bytes=rate // 5 * (2 if encoding == "signed" else 1))
        events = session.until("conversation.item.done")
    check_item(events, ITEM_ORDER_VAD, FIRST)


BAD_MESSAGES: list[tuple[str, str, str | None]] = [
    ("{not json", "invalid_json", None),
    ("[1, 2, 3]", "invalid_event", "type"),
    ('{"event_id": "e1"}', "invalid_event", "type"),
    ('{"type": "no.such.event", "event_id": "e2"}', "unknown_event_type", "type"),
    ('{"type": "transcription_session.update", "session": {}}', "unknown_event_type", "type"),
    ('{"type": "response.create"}', "unsupported_event", "type"),
    ('{"type": "input_audio_buffer.append"}', "invalid_value", "audio"),
    ('{"type": "input_audio_buffer.append", "audio": "%%%not-base64"}', "invalid_value", "audio"),
    ('{"type": "input_audio_buffer.append", "audio": "AAAA"}', "invalid_value", "audio"),
    ('{"type": "session.update", "session": "x"}', "invalid_value", "session"),
    ('{"type": "session.update", "session": {"type": "realtime"}}', "invalid_value", "session.type"),
    ('{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}}', "invalid_value", "session.audio.input.turn_detection.server_vad.threshold"),
    ('{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}}', "invalid_value", "session.audio.input.turn_detection.type"),
    ('{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/flac"}}}}}', "invalid_value", "session.audio.input.format"),
    ('{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "nope"}}}}}', "invalid_value", "session.audio.input.transcription.model"),
    ('{"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-tiny.en", "language": "de"}}}}}', "invalid_value", "session.audio.input.transcription.language"),
]  # fmt: skip


def test_malformed_messages_get_error_events_and_the_session_goes_on(
    engine: RunningServer,
) -> None:
    with realtime_session(engine.url) as session:
        session.recv()
        for message, code, param in BAD_MESSAGES:
            error = session.error_for(message)
            assert (error["code"], error["param"]) == (code, param), (message, error)
            assert error["message"], message
        assert session.error_for(b"\x00\x01binary")["code"] == "invalid_event"

        # A rejected update changed nothing; the session still transcribes.
        session.send("session.update", session=TINY)
        settings = session.recv()["session"]["audio"]["input"]
        assert settings["turn_detection"]["threshold"] == 0.5
        session.append(raw_pcm(compose([0.5, SECOND, 1.2]).samples))
        events = session.until("conversation.item.done")
    check_item(events, ITEM_ORDER_VAD, SECOND)
    assert metric(engine, "stenostack_realtime_client_errors_total", code="invalid_json") >= 1


def test_connection_without_transcription_intent_is_refused_with_a_reason(
    engine: RunningServer,
) -> None:
    with realtime_session(engine.url, query="model=gpt-realtime") as session:
        events, close = session.until_closed(timeout=10)
    assert [event["error"]["code"] for event in events] == ["unsupported_intent"]
    assert close.code == 1008
    assert "intent=transcription" in close.reason


def test_browser_subprotocol_is_accepted(engine: RunningServer) -> None:
    with realtime_session(engine.url, subprotocols=["realtime"]) as session:
        assert session.connection.subprotocol == "realtime"
        assert session.recv()["type"] == "session.created"
        assert metric(engine, "stenostack_realtime_sessions") >= 1
    wait_until(lambda: metric(engine, "stenostack_realtime_sessions") == 0, what="session gauge")


def test_a_turn_without_pauses_is_cut_so_text_keeps_coming(engine: RunningServer) -> None:
    """With a 3 s silence needed to end a turn, 75 s of story is still cut into turns of at
    most 30 s, each at a quiet moment, and no words are lost at the cuts."""
    parts: list[str | float] = [0.5]
    for sentence in STORY:
        parts += [sentence, 0.6]
    story = compose(parts)
    with realtime_session(engine.url) as session:
        session.recv()
        session.send("session.update", session={
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": MODEL},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": 3000}}},
        })  # fmt: skip
        session.recv()
        session.append(raw_pcm(np.concatenate([story.samples, np.zeros(16000 * 4, np.float32)])))
        started = time.monotonic()
        while time.monotonic() - started < 120:
            session.recv()
            stops = [
                e for e in session.received if e["type"] == "input_audio_buffer.speech_stopped"
            ]
            done = [e for e in session.received if e["type"] == "conversation.item.done"]
            heard_all = stops and stops[-1]["audio_end_ms"] >= story.duration * 1000 - 1000
            if heard_all and len(done) == len(stops):
                break
    starts = [e["audio_start_ms"] for e in session.received if e["type"].endswith("speech_started")]
    assert len(starts) >= 3
    for start, stop in zip(starts, stops, strict=True):
        assert stop["audio_end_ms"] - start <= 30_000 + 100
    # Turns are transcribed concurrently, so their texts may finish out of order.
    order = [e["item_id"] for e in session.received if e["type"] == "input_audio_buffer.committed"]
    texts = {
        e["item_id"]: e["transcript"] for e in session.received if e["type"].endswith(".completed")
    }
    text = " ".join(texts[item] for item in order)
    assert word_error_rate(" ".join(STORY), text) <= 0.3, text


def test_hanging_up_cancels_the_transcription(engine: RunningServer) -> None:
    parts: list[str | float] = []
    for sentence in STORY * 2:
        parts += [sentence, 0.6]
    audio = raw_pcm(compose(parts).samples)
    cancelled_before = metric(
        engine, "stenostack_requests_total", endpoint="realtime", status="499"
    )
    with realtime_session(engine.url) as session:
        session.recv()
        session.send("session.update", session={
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": MODEL}, "turn_detection": None}},
        })  # fmt: skip
        session.recv()
        session.append(audio, chunk_bytes=len(audio) // 8 * 2 + 2)
        session.send("input_audio_buffer.commit")
        session.until("conversation.item.added")
    wait_until(
        lambda: (
            metric(engine, "stenostack_requests_total", endpoint="realtime", status="499")
            > cancelled_before
        ),
        what="the item's transcription to be cancelled",
    )
    wait_until(lambda: metric(engine, "stenostack_queued_audio_seconds") == 0, what="idle")


def test_a_turn_that_cannot_be_transcribed_gets_a_failed_event() -> None:
    """The model fails on the second turn: that item gets ``.failed``, the session goes on."""
    clip = raw_pcm(compose([0.3, FIRST, 0.3]).samples)
    manual = {
        "type": "transcription",
        "audio": {"input": {"transcription": {"model": MODEL}, "turn_detection": None}},
    }
    with failing_engine() as url, realtime_session(url) as session:
        session.recv()
        session.send("session.update", session=manual)
        session.recv()
        kinds = []
        for _ in range(3):
            session.append(clip)
            session.send("input_audio_buffer.commit")
            events = session.until("conversation.item.done")
            kinds.append(
                [e["type"].rsplit(".", 1)[-1] for e in events if "transcription" in e["type"]]
            )
        failed = next(e for e in session.received if e["type"].endswith("transcription.failed"))
    assert kinds[0][-1] == "completed" and kinds[2][-1] == "completed"
    assert kinds[1] == ["failed"]
    assert failed["error"]["code"] == "internal_error" and failed["error"]["message"]
    assert failed["content_index"] == 0


def test_a_message_over_the_size_limit_closes_with_a_reason(engine: RunningServer) -> None:
    with realtime_session(engine.url, max_size=None) as session:
        session.recv()
        session.send("input_audio_buffer.append", audio="A" * (17 * 1024 * 1024))
        events, close = session.until_closed()
    assert not events and close.code == 1009  # message too big


def test_streaming_vad_matches_one_pass_over_the_audio() -> None:
    """Silero's state carries across appended pieces of any size."""
    samples = (compose([0.3, FIRST, 0.8, SECOND, 0.5]).samples * 32767).astype(np.int16)
    whole = StreamingVad().probabilities(samples)
    streaming = StreamingVad()
    rng = np.random.default_rng(7)
    pieces, position = [], 0
    while position < len(samples):
        size = int(rng.integers(1, 3 * FRAME_SAMPLES))
        pieces.append(streaming.probabilities(samples[position : position + size]))
        position += size
    assert len(whole) == len(samples) // FRAME_SAMPLES
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-4)
    assert whole.max() > 0.9 and whole[:5].max() < 0.2  # speech found, leading silence not


def events_within(session: RealtimeClient, seconds: float) -> list[str]:
    """The types of the events that arrive in the next ``seconds``."""
    kinds = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            kinds.append(session.recv(timeout=max(deadline - time.monotonic(), 0.05))["type"])
        except TimeoutError:
            break
    return kinds


def test_a_clear_in_mid_speech_leaves_no_turn_behind(engine: RunningServer) -> None:
    """Silence after a clear in the middle of a turn is silence: no turn of nothing."""
    pcm = raw_pcm(compose([0.3, STORY[0]]).samples)
    with realtime_session(engine.url) as session:
        session.recv()
        session.send("session.update", session=TINY)
        session.recv()
        session.append(pcm[: len(pcm) * 2 // 3], chunk_bytes=4800)
        session.until("input_audio_buffer.speech_started")
        session.send("input_audio_buffer.clear")
        session.until("input_audio_buffer.cleared")
        session.append(raw_pcm(compose([3.0]).samples), chunk_bytes=4800)
        kinds = events_within(session, 4.0)
        assert "input_audio_buffer.speech_started" not in kinds, kinds
        # Speech after the clear is heard as usual.
        session.append(raw_pcm(compose([0.3, STORY[1], 1.5]).samples), chunk_bytes=4800)
        events = session.until("conversation.item.done")
    completed = [e for e in events if e["type"] == COMPLETED]
    assert len(completed) == 1 and word_error_rate(STORY[1], completed[0]["transcript"]) <= 0.3
