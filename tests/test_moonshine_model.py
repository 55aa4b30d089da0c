"""Moonshine on ONNX Runtime, in process, with the real bundled model (moonshine-base).

The real speech is the recording moonshine-cpp ships (Samuel Beckett's line, read by a
person); the rest is espeak-ng. Batching across requests goes through the engine's
scheduler, as in ``tests/test_scheduler.py``.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from concurrent.futures import wait
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stenostack.audio.growing_speech import GrowingSpeech
from stenostack.audio.samples import Speech
from stenostack.engine.scheduler import BatchScheduler
from stenostack.errors import InvalidRequest
from stenostack.metrics import EngineMetrics
from stenostack.models.base import (
    ModelStep,
    TextDelta,
    Transcript,
    TranscriptionJob,
    TranscriptionOptions,
)
from stenostack.models.moonshine.family import MOONSHINE_FAMILY, is_moonshine_dir
from stenostack.models.moonshine.model import MoonshineModel
from stenostack.models.moonshine.steps import Decode
from stenostack.models.moonshine.tokenizer import BinTokenizer, parse_pieces
from stenostack.models.moonshine.units import SAMPLE_RATE
from tests.speech import compose, noise
from tests.texts import BECKETT, SENTENCES, STORY
from tests.wer import normalise, word_error_rate

GREEDY = TranscriptionOptions(language="en")
SAMPLED = TranscriptionOptions(language="en", temperature=0.8)
# What moonshine-cpp 0.1.4's own library (MoonshineModel().transcribe_wav) makes of it.
BECKETT_BY_REFERENCE = "Ever tried ever failed, no matter try again fail again fail better."


class RecordingModel(MoonshineModel):
    """The real model, noting each batch it runs: its step kind and size."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[type[ModelStep], int]] = []

    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        self.batches.append((type(steps[0]), len(steps)))
        return super().run_batch(steps)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return MOONSHINE_FAMILY.bundled["moonshine-base"]()


@pytest.fixture(scope="module")
def model(model_dir: Path) -> RecordingModel:
    return RecordingModel(model_dir, cpu_threads=2)


@pytest.fixture
def scheduler(model: RecordingModel) -> Iterator[BatchScheduler]:
    model.batches.clear()
    scheduler = BatchScheduler("moonshine", model, EngineMetrics(), gather_window_s=0.05)
    yield scheduler
    scheduler.close()


def pcm(samples: np.ndarray[Any, Any]) -> Speech:
    return Speech((np.clip(samples, -1, 1) * 32767).astype(np.int16))


def spoken(text: str) -> Speech:
    return pcm(compose([0.3, text, 0.3]).samples)


def run_all(scheduler: BatchScheduler, jobs: list[TranscriptionJob]) -> list[Transcript]:
    tickets = [scheduler.submit(job) for job in jobs]
    wait([ticket.future for ticket in tickets], timeout=120)
    return [ticket.future.result() for ticket in tickets]


def assert_same_segments(found: list[Transcript], expected: list[Transcript]) -> None:
    """The same pieces, tokens and text; log probabilities as near as batched arithmetic
    (rows of one call sum in another order) leaves them."""

    def exact(t: Transcript) -> list[tuple[Any, ...]]:
        return [(s.seek, s.start, s.end, s.text, s.tokens, s.temperature) for s in t.segments]

    assert [exact(t) for t in found] == [exact(t) for t in expected]
    for a, b in zip(found, expected, strict=True):
        for x, y in zip(a.segments, b.segments, strict=True):
            assert x.avg_logprob == pytest.approx(y.avg_logprob, abs=1e-4)


# -- what it hears ---------------------------------------------------------------------------


def test_real_speech_as_the_reference_library_hears_it(
    model: RecordingModel, model_dir: Path
) -> None:
    with wave.open(str(model_dir.parent.parent / "test-data" / "beckett.wav")) as wav:
        assert wav.getframerate() == SAMPLE_RATE
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    options = TranscriptionOptions(language="en", logprobs=True)
    transcript = model.transcribe(Speech(samples), options)
    assert transcript.text == BECKETT_BY_REFERENCE
    assert word_error_rate(BECKETT, transcript.text) < 0.25
    assert transcript.logprobs
    assert "".join(t.token for t in transcript.logprobs).strip() == transcript.text
    assert all(t.logprob <= 0 for t in transcript.logprobs)
    (segment,) = transcript.segments
    assert segment.start == 0 and segment.end == pytest.approx(len(samples) / SAMPLE_RATE, abs=0.01)
    assert segment.avg_logprob < 0 and segment.tokens
    assert transcript.tokens.audio_tokens == pytest.approx(transcript.duration * 16000 / 384, abs=1)


def test_a_word_the_model_would_end_before_is_read_but_noise_is_not(
    model: RecordingModel,
) -> None:
    # Moonshine's first choice for the router's espeak-ng "Hello." is to end at once (the
    # reference library gives ""); made to start, it reads the word. Made to start on
    # noise, it says "You" and stops: too little to keep.
    clip = resources.files("stenostack.router").joinpath("healthcheck.wav").read_bytes()
    with wave.open(io.BytesIO(clip)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert normalise(model.transcribe(Speech(samples), GREEDY).text) == "hello"
    silent = model.transcribe(pcm(noise(2.0, 0.02)), GREEDY)
    assert silent.text == "" and silent.segments == []


@pytest.fixture(scope="module")
def clips() -> list[tuple[str, Speech]]:
    return [(text, spoken(text)) for text in SENTENCES["en"][:6]]


@pytest.fixture(scope="module")
def alone(model: RecordingModel, clips: list[tuple[str, Speech]]) -> list[Transcript]:
    return [model.transcribe(speech, GREEDY) for _text, speech in clips]


def test_english_sentences_within_a_word_error_bound(
    clips: list[tuple[str, Speech]], alone: list[Transcript]
) -> None:
    reference = " ".join(text for text, _speech in clips)
    assert word_error_rate(reference, " ".join(t.text for t in alone)) <= 0.10


def test_requests_batched_together_get_their_own_text(
    model: RecordingModel,
    scheduler: BatchScheduler,
    clips: list[tuple[str, Speech]],
    alone: list[Transcript],
) -> None:
    together = run_all(scheduler, [model.start_transcription(s, GREEDY) for _t, s in clips])
    assert [t.text for t in together] == [t.text for t in alone]
    assert_same_segments(together, alone)
    shared = [size for kind, size in model.batches if kind is Decode and size > 1]
    assert shared, f"no decoding call was shared: {model.batches}"


def test_sampling_repeats_for_the_same_request_alone_or_batched(
    model: RecordingModel, scheduler: BatchScheduler, clips: list[tuple[str, Speech]]
) -> None:
    speeches = [speech for _text, speech in clips[:3]]
    first = [model.transcribe(speech, SAMPLED) for speech in speeches]
    # Beside greedy requests, in one batch: each row draws from its own generator.
    jobs = [model.start_transcription(s, SAMPLED) for s in speeches]
    jobs += [model.start_transcription(s, GREEDY) for s in speeches]
    again = run_all(scheduler, jobs)[:3]
    assert_same_segments(again, first)
    assert all(t.segments[0].temperature == 0.8 for t in first)


def test_word_timestamps_are_refused_naming_the_parameter(model: RecordingModel) -> None:
    with pytest.raises(InvalidRequest) as refused:
        model.validate(TranscriptionOptions(word_timestamps=True))
    assert refused.value.param == "timestamp_granularities[]"
    assert model.validate(TranscriptionOptions(language="EN", prompt="ignored")).language == "en"


# -- long speech -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_speech() -> Speech:
    """The story read with short pauses, a long pause (a break) after its first half."""
    half = len(STORY) // 2
    first = pcm(compose([0.3, *(p for s in STORY[:half] for p in (s, 0.4))]).samples)
    second = pcm(compose([*(p for s in STORY[half:] for p in (s, 0.4))]).samples)
    return Speech(np.concatenate([first.samples, second.samples]), (len(first.samples),))


@pytest.fixture(scope="module")
def long_transcript(
    model: RecordingModel, long_speech: Speech
) -> tuple[Transcript, list[TextDelta]]:
    deltas: list[TextDelta] = []
    return model.run_job(model.start_transcription(long_speech, GREEDY, deltas.append)), deltas


def test_long_speech_streams_its_pieces_in_order(
    long_speech: Speech, long_transcript: tuple[Transcript, list[TextDelta]]
) -> None:
    transcript, deltas = long_transcript
    segments = transcript.segments
    assert len(segments) >= 3  # pieces of at most one window, cut at the break too
    assert "".join(delta.text for delta in deltas) == transcript.text
    assert [d.text.strip() for d in deltas] == [s.text.strip() for s in segments]
    assert [s.id for s in segments] == list(range(len(segments)))
    assert all(a.end <= b.start for a, b in itertools.pairwise(segments))
    break_s = long_speech.breaks[0] / SAMPLE_RATE
    assert any(abs(s.end - break_s) < 0.02 for s in segments)  # no segment spans the break
    assert word_error_rate(" ".join(STORY), transcript.text) <= 0.08


def test_growing_speech_gives_the_whole_speech_transcript(
    model: RecordingModel,
    long_speech: Speech,
    long_transcript: tuple[Transcript, list[TextDelta]],
) -> None:
    growing = GrowingSpeech(SAMPLE_RATE, min_pause_seconds=3.0, expected_samples=0)
    cut = long_speech.breaks[0]
    step = SAMPLE_RATE  # a second of speech at a time, the break as a 4 s gap in the file

    total = len(long_speech.samples)
    edges = sorted({*range(0, total, step), cut, total})

    def feed() -> None:
        for start, end in itertools.pairwise(edges):
            gap = 4 * SAMPLE_RATE if start >= cut else 0
            growing.add((start + gap, end + gap), long_speech.samples[start:end])
            time.sleep(0.02)
        growing.finish(total / SAMPLE_RATE + 4)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deltas: list[TextDelta] = []
    transcript = model.run_job(model.start_growing_transcription(growing, GREEDY, deltas.append))
    feeder.join()
    assert list(growing.ready(10**12).breaks) == list(long_speech.breaks)
    whole, whole_deltas = long_transcript
    assert deltas == whole_deltas
    assert transcript == whole


# -- files -------------------------------------------------------------------------------------


def test_tokenizer_reads_two_byte_lengths_and_joins_bytes_as_utf8() -> None:
    long_piece = b"x" * 300  # a length of 300: 172 (300 - 256 + 128), then 2
    data = b"".join(
        [b"\x05<unk>", b"\x03<s>", b"\x04</s>", b"\x01\xc3", b"\x01\xa9", b"\x00",
         b"\x06\xe2\x96\x81caf", bytes([172, 2]) + long_piece]
    )  # fmt: skip
    pieces = parse_pieces(data)
    assert pieces[5] == b"" and pieces[7] == long_piece
    tokenizer = BinTokenizer(pieces)
    assert tokenizer.decode([1, 6, 3, 4, 2]) == "café"  # a split character whole again
    assert tokenizer.token_text(6) == " caf"
    with pytest.raises(ValueError):
        parse_pieces(data[:-5])


def test_family_recognises_onnx_and_ort_directories(tmp_path: Path, model_dir: Path) -> None:
    assert is_moonshine_dir(model_dir)
    for name in ("encoder_model.onnx", "decoder_model_merged.onnx"):
        (tmp_path / name).write_bytes(b"")
    assert not is_moonshine_dir(tmp_path)
    (tmp_path / "tokenizer.bin").write_bytes(b"")
    assert is_moonshine_dir(tmp_path)
