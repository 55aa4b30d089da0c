"""A streamed long file's first words come at once: its speech is found as it decodes.

The speech handed on piece by piece must be exactly the whole-file path's (the same spans,
samples and breaks, across VAD blocks), the first windows must be ready long before a long
file is decoded, and a transcription over the growing speech must be the same, delta for
delta, segment for segment, as over the whole file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from stenostack.audio.decode import decode_audio
from stenostack.audio.growing_speech import GrowingSpeech, PreparationStopped, SpeechPreparation
from stenostack.audio.vad import BLOCK_SECONDS
from stenostack.audio.vad_settings import FILE_VAD, LIVE_TURN_VAD, VadSettings
from stenostack.engine.engine import Engine, EngineLimits
from stenostack.engine.pipeline import (
    GROWING_SPEECH_ENV,
    PreparedAudio,
    prepare_audio,
    prepare_growing,
    prepared_from,
)
from stenostack.metrics import EngineMetrics
from stenostack.models.base import AudioConfig, TextDelta, Transcript, TranscriptionOptions
from stenostack.models.registry import ModelRegistry, ModelSpec, choose_placement
from tests.servers import openai_client, server_process
from tests.speech import RATE, Samples, compose, noise, wav_bytes
from tests.texts import STORY

MAX_SECONDS = 7200.0
# The target for the first delta of an hour-long file; its first window's speech
# must be ready within it even without a model (about 0.3 s on 2 idle cores).
FIRST_DELTA_S = 1.5
# What an hour may add to the first delta of its own first minute (the whole-file path adds
# the hour's decoding and VAD: 5-15 s here; the growing path, the hour's decoding competing
# with the first window for the CPU).
HOUR_EXTRA_S = 1.0
ONE_WINDOW = int(31 * RATE)  # 30 s and a margin


def story_minutes(minutes: float) -> Samples:
    """The story with pauses short and long (some over the 3 s break), for ``minutes``."""
    parts: list[str | float] = [0.7]
    pauses = (0.5, 0.9, 2.5, 4.0)
    index = 0
    while sum(p if isinstance(p, float) else len(p) / 14 for p in parts) < minutes * 60:
        parts += [STORY[index % len(STORY)], pauses[index % len(pauses)]]
        index += 1
    return compose(parts, noise_level=0.002).samples


@pytest.fixture(scope="module")
def six_minute_story() -> Samples:
    """Longer than one VAD block, so a block boundary falls inside it."""
    samples = story_minutes(6.0)
    assert len(samples) > BLOCK_SECONDS * RATE
    return samples


@pytest.fixture(scope="module")
def six_minutes(six_minute_story: Samples) -> bytes:
    return wav_bytes(six_minute_story)


@pytest.fixture(scope="module")
def one_hour(six_minute_story: Samples) -> bytes:
    return wav_bytes(np.tile(six_minute_story, 10))


def whole_file(wav: bytes, settings: VadSettings) -> PreparedAudio:
    audio = decode_audio(io.BytesIO(wav), RATE, MAX_SECONDS)
    return prepare_audio(audio, TranscriptionOptions(vad=settings))


def as_decoded(wav: bytes, settings: VadSettings) -> SpeechPreparation:
    """A preparation of ``wav`` running on its own thread."""
    config = AudioConfig(sample_rate=RATE, max_clip_seconds=30.0, frames_per_second=100)
    options = TranscriptionOptions(vad=settings)
    preparation = prepare_growing(io.BytesIO(wav), config, MAX_SECONDS, options, 0.0)

    def run() -> None:
        with contextlib.suppress(PreparationStopped):  # a test that has seen enough
            preparation.run()

    threading.Thread(target=run, daemon=True).start()
    return preparation


def assert_same(expected: PreparedAudio, found: PreparedAudio) -> None:
    assert found.timeline.spans == expected.timeline.spans
    assert list(found.speech.breaks) == list(expected.speech.breaks)
    assert np.array_equal(found.speech.samples, expected.speech.samples)
    assert found.duration == expected.duration


@pytest.mark.parametrize("settings", [FILE_VAD, LIVE_TURN_VAD], ids=["file", "live-turn"])
def test_speech_found_as_decoded_is_the_whole_file_speech(
    six_minutes: bytes, settings: VadSettings
) -> None:
    expected = whole_file(six_minutes, settings)
    assert len(expected.timeline.spans) > 5 and expected.speech.breaks  # worth comparing
    preparation = as_decoded(six_minutes, settings)
    assert_same(expected, prepared_from_when_done(preparation.speech))


@pytest.mark.parametrize(
    "seconds",
    [BLOCK_SECONDS, BLOCK_SECONDS + 480 / RATE, 2 * BLOCK_SECONDS + 0.5],
    ids=["one-whole-block", "last-row-mostly-audio", "two-blocks-and-a-bit"],
)
def test_block_edges_match_the_whole_file_path(seconds: float) -> None:
    """Where faster-whisper pads a block and zeroes its last row's tail, and where speech
    runs across a block boundary (spans are merged there)."""
    length = round(seconds * RATE)
    speech = story_minutes(seconds / 60 + 0.5)[:length]
    samples = speech + noise(len(speech) / RATE, level=0.002, seed=1)[: len(speech)]
    assert len(samples) == length
    wav = wav_bytes(samples)
    assert_same(
        whole_file(wav, FILE_VAD), prepared_from_when_done(as_decoded(wav, FILE_VAD).speech)
    )


def test_silence_has_no_speech() -> None:
    wav = wav_bytes(noise(40.0, level=0.001))
    found = prepared_from_when_done(as_decoded(wav, FILE_VAD).speech)
    assert found.is_silent and found.duration == whole_file(wav, FILE_VAD).duration


def test_first_window_of_an_hour_is_ready_at_once(one_hour: bytes) -> None:
    """The first 31 s of an hour's speech are final long before the hour is decoded."""
    started = time.perf_counter()
    preparation = as_decoded(one_hour, FILE_VAD)
    first = preparation.speech.ready(ONE_WINDOW, timeout=60)
    ready_after = time.perf_counter() - started
    assert len(first.samples) >= ONE_WINDOW
    assert not preparation.speech.complete
    assert ready_after < FIRST_DELTA_S, f"first window after {ready_after:.2f} s"
    preparation.stop()


def test_a_cancelled_preparation_wakes_its_readers(one_hour: bytes) -> None:
    preparation = as_decoded(one_hour, FILE_VAD)
    preparation.speech.ready(ONE_WINDOW, timeout=60)
    preparation.stop()
    with pytest.raises(Exception, match="cancelled"):
        preparation.speech.ready(10**12, timeout=10)


def prepared_from_when_done(speech: GrowingSpeech) -> PreparedAudio:
    speech.ready(10**12, timeout=120)
    return prepared_from(speech)


# -- a real model over the growing speech ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_engine() -> Iterator[Engine]:
    registry = ModelRegistry(
        [ModelSpec.parse("whisper-tiny.en")], {}, choose_placement("cpu", "int8")
    )
    registry.load()
    limits = EngineLimits(
        max_audio_seconds=MAX_SECONDS, max_queued_audio_seconds=4 * MAX_SECONDS, gather_window_s=0
    )
    engine = Engine(registry, EngineMetrics(), limits)
    yield engine
    engine.shutdown()


def streamed(engine: Engine, wav: bytes) -> tuple[list[TextDelta], Transcript]:
    deltas: list[TextDelta] = []
    options = TranscriptionOptions(word_timestamps=True)

    async def run() -> Transcript:
        result = await engine.run(
            "whisper-tiny.en", io.BytesIO(wav), options, on_delta=deltas.append
        )
        return result.transcript

    return deltas, asyncio.run(run())


def test_growing_transcript_is_the_whole_file_transcript(
    tiny_engine: Engine, six_minutes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GROWING_SPEECH_ENV, "0")
    whole_deltas, whole = streamed(tiny_engine, six_minutes)
    monkeypatch.setenv(GROWING_SPEECH_ENV, "1")
    growing_deltas, growing = streamed(tiny_engine, six_minutes)
    assert len(whole.segments) > 10 and whole.words
    assert growing_deltas == whole_deltas
    assert growing == whole  # text, segments, seeks, times and words, exactly
    assert growing.duration == len(decode_audio(io.BytesIO(six_minutes), RATE, 1e9).samples) / RATE


def first_delta(engine: Engine, wav: bytes) -> float:
    """Seconds from the request to its first delta (the rest of the work is cancelled)."""

    async def measure() -> float:
        started = time.perf_counter()
        arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_delta(_delta: TextDelta) -> None:
            if not arrived.done():
                arrived.set_result(time.perf_counter() - started)

        options = TranscriptionOptions()
        source = io.BytesIO(wav)
        work = asyncio.ensure_future(
            engine.run("whisper-tiny.en", source, options, on_delta=on_delta)
        )
        try:
            return await asyncio.wait_for(arrived, timeout=120)
        finally:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)

    return asyncio.run(measure())


def test_first_delta_of_an_hour_comes_as_soon_as_a_minutes(
    tiny_engine: Engine,
    six_minute_story: Samples,
    one_hour: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hour adds less than HOUR_EXTRA_S to what its first minute alone takes (the first
    window's model time, which on a loaded 2-core machine can exceed the issue's 1.5 s on its
    own: benchmarks/streaming_latency.py --long-minutes 10 60 reports the absolute times)."""
    one_minute = wav_bytes(six_minute_story[: 60 * RATE])
    first_delta(tiny_engine, one_minute)  # a warm model, as a server has
    monkeypatch.setenv(GROWING_SPEECH_ENV, "1")
    minute = min(first_delta(tiny_engine, one_minute) for _ in range(3))
    hour = min(first_delta(tiny_engine, one_hour) for _ in range(3))
    assert hour < minute + HOUR_EXTRA_S, f"first delta: {hour:.2f} s, one minute's {minute:.2f} s"


def test_streamed_over_http_to_the_end(six_minutes: bytes) -> None:
    """Through a real server and the official client: the upload stays readable while the
    first words are sent, and the streamed text is the plain answer's."""
    model = "whisper-tiny.en"
    command = [sys.executable, "-m", "stenostack", "serve", "--log-level", "warning"]
    with server_process([*command, "--model", model], env={GROWING_SPEECH_ENV: "1"}) as server:
        client = openai_client(server.url, timeout=300)
        plain = client.audio.transcriptions.create(model=model, file=("story.wav", six_minutes))
        events = list(
            client.audio.transcriptions.create(
                model=model, file=("story.wav", six_minutes), stream=True
            )
        )
    deltas = [event.delta for event in events if event.type == "transcript.text.delta"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(deltas) == done.text == plain.text
