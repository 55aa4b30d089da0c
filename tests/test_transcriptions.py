"""Transcriptions through the official openai SDK and raw multipart, on real speech."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from tests.servers import RunningServer, openai_client
from tests.speech import Recording, compose, pyav_encode, wav_bytes
from tests.wer import word_error_rate

SENTENCES = [
    "The weather today is sunny with a light breeze from the west.",
    "Please remember to bring your umbrella tomorrow.",
    "My favorite color is green and I like to read books in the evening.",
    "The train to the city leaves every hour from the main station.",
]
# Bounds on this synthetic speech (espeak-ng): measured WER is far below (see
# benchmarks/accuracy.py); the bound catches broken decoding, not small drifts.
WER_BOUND = {"whisper-1": 0.12, "whisper-base": 0.12, "whisper-tiny.en": 0.2}


@pytest.fixture(scope="module")
def english() -> Recording:
    return compose(
        [0.5, SENTENCES[0], 0.8, SENTENCES[1], 1.0, SENTENCES[2], 0.7, SENTENCES[3], 0.5]
    )


@pytest.fixture(scope="module")
def english_wav(english: Recording) -> bytes:
    return wav_bytes(english.samples)


@pytest.fixture(scope="module")
def strict(engine: RunningServer) -> Iterator[OpenAI]:
    """An SDK client that validates every response against its types."""
    with openai_client(engine.url, timeout=300, strict=True) as client:
        yield client


@pytest.mark.parametrize("model", ["whisper-1", "whisper-tiny.en"])
def test_json_text_and_usage(
    strict: OpenAI, english: Recording, english_wav: bytes, model: str
) -> None:
    result = strict.audio.transcriptions.create(model=model, file=("speech.wav", english_wav))
    error_rate = word_error_rate(english.text, result.text)
    print(f"{model}: WER {error_rate:.3f}: {result.text}")
    assert error_rate <= WER_BOUND[model], result.text
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == pytest.approx(english.duration, abs=1.0)
    body = result.model_dump(exclude_none=True)
    assert set(body) == {"text", "usage"}


def test_verbose_json_segments_and_words(
    strict: OpenAI, english: Recording, english_wav: bytes
) -> None:
    result = strict.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", english_wav),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.language == "english"
    assert isinstance(result.duration, float)
    assert result.duration == pytest.approx(english.duration, abs=0.05)
    assert word_error_rate(english.text, result.text) <= WER_BOUND["whisper-1"]
    assert result.segments and result.words
    assert [segment.id for segment in result.segments] == list(range(len(result.segments)))
    raw = result.model_dump()
    for segment in raw["segments"]:
        assert set(segment) == {"id", "seek", "start", "end", "text", "tokens", "temperature",
                                "avg_logprob", "compression_ratio", "no_speech_prob"}  # fmt: skip
        assert isinstance(segment["seek"], int) and segment["tokens"]
        assert 0 <= segment["start"] < segment["end"] <= english.duration + 0.01
    # Words are in order, inside the file, and where the speech really is.
    starts = [word.start for word in result.words]
    assert starts == sorted(starts)
    spoken = " ".join(word.word for word in result.words)
    assert word_error_rate(english.text, spoken) <= WER_BOUND["whisper-1"]
    tolerance = 0.6
    for word in result.words:
        assert word.start <= word.end
        middle = (word.start + word.end) / 2
        assert any(
            u.start - tolerance <= middle <= u.end + tolerance for u in english.utterances
        ), f"{word} lies in a pause"
    first, last = english.utterances[0], english.utterances[-1]
    assert abs(result.words[0].start - first.start) <= tolerance
    assert abs(result.words[-1].end - last.end) <= tolerance + 0.4


def test_text_format_is_plain_text(
    engine: RunningServer, english: Recording, english_wav: bytes
) -> None:
    response = httpx.post(
        f"{engine.url}/v1/audio/transcriptions",
        files={"file": ("speech.wav", english_wav, "audio/wav")},
        data={"model": "whisper-tiny.en", "response_format": "text"},
        timeout=300,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.endswith("\n") and not response.text.startswith("{")
    assert word_error_rate(english.text, response.text) <= WER_BOUND["whisper-tiny.en"]


def test_text_srt_vtt_through_sdk(client: OpenAI, english_wav: bytes) -> None:
    text = client.audio.transcriptions.create(
        model="whisper-tiny.en", file=("speech.wav", english_wav), response_format="text"
    )
    srt = client.audio.transcriptions.create(
        model="whisper-tiny.en", file=("speech.wav", english_wav), response_format="srt"
    )
    vtt = client.audio.transcriptions.create(
        model="whisper-tiny.en", file=("speech.wav", english_wav), response_format="vtt"
    )
    assert isinstance(text, str) and isinstance(srt, str) and isinstance(vtt, str)

    timing = r"(\d{2}):(\d{2}):(\d{2})[,.](\d{3})"
    srt_blocks = srt.split("\n\n")
    assert srt_blocks[-1] == "" and srt.endswith("\n\n")
    for number, block in enumerate(srt_blocks[:-1], start=1):
        index, times, cue = block.split("\n", 2)
        assert index == str(number)
        assert re.fullmatch(
            f"{timing.replace('[,.]', ',')} --> {timing.replace('[,.]', ',')}", times
        )
        assert cue.strip() and "\n\n" not in cue

    assert vtt.startswith("WEBVTT\n\n") and vtt.endswith("\n\n")
    vtt_blocks = vtt[len("WEBVTT\n\n") :].split("\n\n")[:-1]
    assert len(vtt_blocks) == len(srt_blocks) - 1
    for block in vtt_blocks:
        times, cue = block.split("\n", 1)
        assert re.fullmatch(
            f"{timing.replace('[,.]', '[.]')} --> {timing.replace('[,.]', '[.]')}", times
        )
        assert cue.strip()
    # The same cue texts, in the same order, as the plain text.
    cues = " ".join(block.split("\n", 2)[2] for block in srt_blocks[:-1])
    assert cues.split() == text.split()


def test_raw_multipart_like_curl(engine: RunningServer, english: Recording) -> None:
    """What `curl -F file=@speech.mp3 -F model=whisper-1` sends."""
    mp3 = pyav_encode(english.samples, "mp3", "libmp3lame", rate=44_100)
    response = httpx.post(
        f"{engine.url}/v1/audio/transcriptions",
        files={"file": ("speech.mp3", mp3, "audio/mpeg")},
        data={"model": "whisper-1", "unknown_field": "ignored"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"text", "usage"}
    assert word_error_rate(english.text, body["text"]) <= WER_BOUND["whisper-1"]


def test_sdk_form_fields_as_sent(client: OpenAI, english_wav: bytes) -> None:
    """language, prompt, temperature, include[], chunking_strategy as the SDK encodes them."""
    result = client.audio.transcriptions.create(
        model="whisper-base",
        file=("speech.wav", english_wav),
        language="en",
        prompt="A weather report and travel notes.",
        temperature=0.0,
        include=["logprobs"],
        chunking_strategy={
            "type": "server_vad",
            "threshold": 0.5,
            "silence_duration_ms": 800,
            "prefix_padding_ms": 300,
        },
    )
    assert result.logprobs
    assert all(item.logprob is not None and item.logprob <= 0 for item in result.logprobs)
    joined = "".join(item.token or "" for item in result.logprobs)
    assert joined.split() == result.text.split()
    assert list(result.logprobs[0].bytes or []) == list((result.logprobs[0].token or "").encode())

    sampled = client.audio.transcriptions.create(
        model="whisper-base", file=("speech.wav", english_wav), temperature=0.3,
        chunking_strategy="auto",
    )  # fmt: skip
    assert word_error_rate(" ".join(SENTENCES), sampled.text) <= 0.3
