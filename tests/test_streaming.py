"""``stream=true``: server-sent events read by the official SDK and off the raw wire."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import APIError, BadRequestError, NotFoundError, OpenAI

from tests.faulty_model import failing_engine
from tests.servers import RunningServer, metric, openai_client, wait_until
from tests.speech import Recording, compose, silence, speech_file, wav_bytes
from tests.sse import Frame, frames
from tests.texts import SPANISH, STORY
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"


@pytest.fixture(scope="module")
def story() -> Recording:
    """About 80 s of speech: several decoding windows."""
    parts: list[str | float] = [0.5]
    for sentence in STORY:
        parts += [sentence, 0.8]
    return compose(parts)


@pytest.fixture(scope="module")
def story_wav(story: Recording) -> bytes:
    return wav_bytes(story.samples)


def post_stream(
    server_url: str, data: dict[str, Any], wav: bytes
) -> tuple[httpx.Response, list[Frame]]:
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{server_url}/v1/audio/transcriptions",
        data={**data, "stream": "true"},
        files={"file": ("speech.wav", wav, "audio/wav")},
        timeout=300,
    ) as response:
        if response.status_code != 200:
            response.read()
            return response, []
        return response, list(frames(response, started))


def test_sdk_streams_deltas_then_one_done(
    client: OpenAI, story: Recording, story_wav: bytes
) -> None:
    started = time.monotonic()
    events = []
    for event in client.audio.transcriptions.create(
        model=MODEL, file=("story.wav", story_wav), stream=True
    ):
        events.append((time.monotonic() - started, event))

    kinds = [event.type for _, event in events]
    assert kinds[-1] == "transcript.text.done"
    assert set(kinds[:-1]) == {"transcript.text.delta"}
    deltas = [event.delta for _, event in events[:-1]]  # type: ignore[union-attr]
    assert all(deltas)
    done = events[-1][1]
    assert done.type == "transcript.text.done"
    assert "".join(deltas) == done.text
    assert word_error_rate(story.text, done.text) <= 0.3, done.text

    # The same words as without streaming: one code path.
    plain = client.audio.transcriptions.create(model=MODEL, file=("story.wav", story_wav))
    assert plain.text == done.text

    # Usage counts tokens: about 50 audio tokens per second of speech, no prompt.
    usage = done.usage
    assert usage is not None and usage.type == "tokens"
    details = usage.input_token_details
    assert details is not None and details.text_tokens == 0 and details.audio_tokens is not None
    assert 0.5 * 50 * story.duration < details.audio_tokens <= 50 * story.duration + 1
    assert usage.input_tokens == details.audio_tokens
    assert usage.output_tokens >= len(done.text.split())
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens

    # Text arrives window by window: the first piece well before the last.
    first, last = events[0][0], events[-1][0]
    assert first < 0.6 * last, (first, last)
    assert len({round(at, 2) for at, _ in events[:-1]}) >= 2


def test_wire_format_is_data_frames_ending_with_done(engine: RunningServer) -> None:
    response, received = post_stream(
        engine.url, {"model": MODEL}, speech_wav("Please call me back after lunch.")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    assert received[-1].data == "[DONE]"
    events = [frame.json for frame in received[:-1]]
    assert [e["type"] for e in events].count("transcript.text.done") == 1
    assert events[-1]["type"] == "transcript.text.done"
    for event in events[:-1]:
        assert set(event) == {"type", "delta"}
    assert set(events[-1]) == {"type", "text", "usage", "languages"}
    assert events[-1]["languages"] == [{"code": "en"}]
    assert word_error_rate("Please call me back after lunch.", events[-1]["text"]) <= 0.2


def test_logprobs_come_with_each_delta(client: OpenAI, story_wav: bytes) -> None:
    events = list(
        client.audio.transcriptions.create(
            model=MODEL, file=("story.wav", story_wav), stream=True, include=["logprobs"]
        )
    )
    done = events[-1]
    assert done.type == "transcript.text.done" and done.logprobs
    streamed = []
    for event in events[:-1]:
        assert event.type == "transcript.text.delta" and event.logprobs
        streamed += event.logprobs
        # A delta's tokens spell its text (the first delta drops the leading space).
        assert "".join(item.token or "" for item in event.logprobs).strip() == event.delta.strip()
    assert [(i.token, i.logprob) for i in streamed] == [(i.token, i.logprob) for i in done.logprobs]
    assert all(item.logprob is not None and item.logprob <= 0 for item in streamed)


def test_translation_streams_english(engine: RunningServer) -> None:
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{engine.url}/v1/audio/translations",
        data={"model": "whisper-1", "stream": "true"},
        files={"file": speech_file(SPANISH, "es")},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        received = list(frames(response, started))
    done = received[-2].json
    assert done["type"] == "transcript.text.done" and "usage" not in done
    assert "".join(frame.json["delta"] for frame in received[:-2]) == done["text"]
    words = done["text"].lower()
    assert "good morning" in words or "weather" in words, done["text"]


def test_verbose_json_streams_segments_on_the_files_timeline(engine: RunningServer) -> None:
    """The extension: each delta is followed by its segment, with words, as soon as it is
    final; the done event carries the whole verbose transcript, the same as without a
    stream. A long silence in the middle is cut from the speech the model hears, so the
    segments' times show whether they were put back on the file's timeline."""
    recording = compose([0.5, STORY[0], 0.8, STORY[1], 6.0, STORY[2], 0.8, STORY[3], 0.5])
    wav = wav_bytes(recording.samples)
    fields = {
        "model": MODEL,
        "response_format": "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
    }
    response, received = post_stream(engine.url, fields, wav)
    assert response.status_code == 200, response.text
    assert received[-1].data == "[DONE]"
    events = [frame.json for frame in received[:-1]]
    done = events[-1]
    assert done["type"] == "transcript.text.done"
    deltas = [event for event in events if event["type"] == "transcript.text.delta"]
    segments = [event for event in events if event["type"] == "transcript.text.segment"]
    assert len(deltas) + len(segments) + 1 == len(events)
    assert "".join(delta["delta"] for delta in deltas) == done["text"]
    # Each segment right after its delta, named by it.
    for index, event in enumerate(events[:-1]):
        if event["type"] == "transcript.text.segment":
            assert events[index - 1]["segment_id"] == event["id"]

    plain = httpx.post(
        f"{engine.url}/v1/audio/transcriptions",
        data=fields,
        files={"file": ("speech.wav", wav, "audio/wav")},
        timeout=300,
    ).json()
    for key in ("task", "language", "duration", "text", "segments", "words", "usage"):
        assert done[key] == plain[key], key
    streamed = [(event["start"], event["end"], event["text"]) for event in segments]
    final = [(s["start"], s["end"], s["text"].strip()) for s in plain["segments"]]
    assert streamed == final
    assert [word for event in segments for word in event["words"]] == plain["words"]
    # The 6 s pause is there between two segments only on the file's timeline.
    gaps = [after["start"] - before["end"] for before, after in itertools.pairwise(segments)]
    assert max(gaps) > 5.0, gaps


def test_silence_streams_an_empty_done(client: OpenAI) -> None:
    wav = wav_bytes(silence(3.0))
    events = list(client.audio.transcriptions.create(model=MODEL, file=("s.wav", wav), stream=True))
    assert [event.type for event in events] == ["transcript.text.done"]
    assert events[0].type == "transcript.text.done" and events[0].text == ""


@pytest.mark.parametrize(
    ("fields", "wav", "status", "param"),
    [
        ({"model": MODEL}, b"not audio at all", 400, "file"),
        ({"model": MODEL, "response_format": "vtt"}, None, 400, "stream"),
        ({"model": MODEL, "response_format": "srt"}, None, 400, "stream"),
        ({"model": "no-such-model"}, None, 404, "model"),
        ({"model": MODEL, "language": "xx"}, None, 400, "language"),
    ],
)
def test_errors_before_any_event_are_ordinary_responses(
    engine: RunningServer, fields: dict[str, str], wav: bytes | None, status: int, param: str
) -> None:
    response, received = post_stream(engine.url, fields, wav or speech_wav("Hello there."))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["param"] == param
    assert received == []


def test_sdk_raises_errors_before_the_stream(client: OpenAI) -> None:
    with pytest.raises(NotFoundError):
        client.audio.transcriptions.create(
            model="nope", file=("a.wav", speech_wav("Hi.")), stream=True
        )
    with pytest.raises(BadRequestError) as caught:
        client.audio.transcriptions.create(model=MODEL, file=("a.wav", b"\0" * 400), stream=True)
    assert caught.value.param == "file"


def test_disconnect_mid_stream_stops_the_work(engine: RunningServer, story: Recording) -> None:
    long_wav = wav_bytes(
        compose([0.5, *[part for s in STORY + STORY + STORY for part in (s, 0.8)]]).samples
    )
    batches_before = metric(engine, "stenostack_batch_size_count")
    cancelled_before = metric(engine, "stenostack_request_errors_total", code="client_disconnected")
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{engine.url}/v1/audio/transcriptions",
        data={"model": MODEL, "stream": "true"},
        files={"file": ("long.wav", long_wav, "audio/wav")},
        timeout=300,
    ) as response:
        first = next(frames(response, started))
        assert first.json["type"] == "transcript.text.delta"
    # Closing the response hung up: the engine notices, and the rest is never decoded.
    wait_until(
        lambda: (
            metric(engine, "stenostack_request_errors_total", code="client_disconnected")
            > cancelled_before
        ),
        what="the stream to be counted as cancelled",
    )
    wait_until(
        lambda: metric(engine, "stenostack_requests_running", model=MODEL) == 0,
        what="the cancelled work to stop",
    )
    windows = 3 * len(STORY) * 5 / 30  # about five seconds a sentence
    batches_used = metric(engine, "stenostack_batch_size_count") - batches_before
    assert batches_used < windows, (batches_used, windows)


def speech_wav(text: str) -> bytes:
    return wav_bytes(compose([0.3, text, 0.3]).samples)


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    with failing_engine() as url:
        yield url


def test_failure_after_the_stream_started_is_sent_in_band(
    failing_server: str, story_wav: bytes
) -> None:
    # On the wire: the first window's text, then an error frame ends the stream: no done
    # event and no [DONE], so no client can take the partial text for the whole.
    response, wire = post_stream(failing_server, {"model": MODEL}, story_wav)
    assert response.status_code == 200
    assert [frame.json.get("type") for frame in wire[:-1]] == ["transcript.text.delta"] * (
        len(wire) - 1
    )
    assert len(wire) >= 2
    error = wire[-1].json["error"]
    assert error["code"] == "internal_error" and error["type"] == "server_error"
    assert error["message"]

    # The SDK raises it after handing out the deltas that came first.
    client = openai_client(failing_server)
    received = []
    with pytest.raises(APIError) as caught:
        for event in client.audio.transcriptions.create(
            model=MODEL, file=("story.wav", story_wav), stream=True
        ):
            received.append(event)
    assert received and all(event.type == "transcript.text.delta" for event in received)
    assert caught.value.code == "internal_error"

    # The server goes on serving.
    text = client.audio.transcriptions.create(
        model=MODEL, file=("a.wav", speech_wav("Thank you very much."))
    )
    assert "thank" in text.text.lower()
