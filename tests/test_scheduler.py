"""The scheduler and the Whisper job, in process, with the real tiny.en model.

These drive :class:`BatchScheduler` and the model's job directly, to see what the HTTP tests
cannot: which request each batched step belonged to, and what a job does when a shortened
window makes the decoder loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import wait
from typing import Any

import numpy as np
import pytest

from stenostack.audio.samples import Speech
from stenostack.engine.scheduler import BatchScheduler
from stenostack.metrics import EngineMetrics
from stenostack.models.base import (
    ModelStep,
    StepGroup,
    TextDelta,
    Transcript,
    TranscriptionJob,
    TranscriptionOptions,
)
from stenostack.models.pieces import PiecePlan
from stenostack.models.sources import resolve_model_dir
from stenostack.models.whisper.input_sizing import InputSizing
from stenostack.models.whisper.model import WhisperCT2
from stenostack.models.whisper.pieces import WHISPER_PIECES
from stenostack.models.whisper.steps import Encode, Generate, Hypotheses
from stenostack.models.whisper.units import WINDOW_FRAMES
from tests.speech import Recording, compose
from tests.texts import STORY
from tests.wer import word_error_rate

GREEDY = TranscriptionOptions(language="en")


class RecordingModel(WhisperCT2):
    """The real model, noting each batch it runs: (step kind, tags of its steps)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[ModelStep, list[str]]] = []
        self.spans: list[tuple[float, float]] = []  # when each batch started and ended

    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        self.batches.append((steps[0], [getattr(step, "tag", "?") for step in steps]))
        started = time.perf_counter()
        try:
            return super().run_batch(steps)
        finally:
            self.spans.append((started, time.perf_counter()))


def tagged(job: TranscriptionJob, tag: str) -> TranscriptionJob:
    """The same job, with each of its steps labelled with ``tag``."""
    try:
        step = next(job)
        while True:
            for each in step.steps if isinstance(step, StepGroup) else (step,):
                each.tag = tag  # type: ignore[attr-defined]
            try:
                step = job.send((yield step))
            except StopIteration as done:
                transcript: Transcript = done.value
                return transcript
    finally:
        job.close()


@pytest.fixture(scope="module")
def model() -> RecordingModel:
    return RecordingModel(resolve_model_dir("whisper-tiny.en"), cpu_threads=2)


@pytest.fixture
def scheduler(model: RecordingModel) -> Iterator[BatchScheduler]:
    model.batches.clear()
    scheduler = BatchScheduler("tiny", model, EngineMetrics(), gather_window_s=0.01)
    yield scheduler
    scheduler.close()


def pcm(text: str, voice: str = "en-us") -> Speech:
    samples = compose([0.3, text, 0.3], voice=voice).samples
    return Speech((np.clip(samples, -1, 1) * 32767).astype(np.int16))


def test_steps_of_concurrent_jobs_share_batches_and_match_alone(
    model: RecordingModel, scheduler: BatchScheduler
) -> None:
    texts = [
        "Please call me back after lunch.",
        "The package should arrive by Monday morning.",
        "We need three more chairs in the conference room.",
    ]
    audios = [pcm(text) for text in texts]
    alone = [model.transcribe(audio, GREEDY) for audio in audios]
    model.batches.clear()
    tickets = [
        scheduler.submit(tagged(model.start_transcription(audio, GREEDY), str(i)))
        for i, audio in enumerate(audios)
    ]
    together = [ticket.future.result(timeout=60) for ticket in tickets]
    assert [t.text for t in together] == [t.text for t in alone]
    for text, transcript in zip(texts, together, strict=True):
        assert word_error_rate(text, transcript.text) <= 0.2, transcript.text
    # Decoding steps of different requests ran together. (How many joined the first batch
    # depends on when each job's first step was ready: a job that arrives after another's
    # decode step is ready joins the next batch.)
    decode_batches = [tags for step, tags in model.batches if isinstance(step, Generate)]
    assert max(len(tags) for tags in decode_batches) >= 2, decode_batches
    assert {tag for tags in decode_batches for tag in tags} == {"0", "1", "2"}


def test_fallback_decodes_again_only_the_window_that_failed(
    model: RecordingModel, scheduler: BatchScheduler
) -> None:
    # tiny.en is English-only: German speech makes its greedy decode fail Whisper's
    # log-probability check, so that window climbs the temperature ladder.
    english = pcm("The train to the airport leaves every fifteen minutes.")
    german = pcm("Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.", voice="de")
    tickets = [
        scheduler.submit(tagged(model.start_transcription(english, GREEDY), "english")),
        scheduler.submit(tagged(model.start_transcription(german, GREEDY), "german")),
    ]
    english_result, german_result = (t.future.result(timeout=120) for t in tickets)

    hot = [tags for step, tags in model.batches if isinstance(step, Generate) and step.temperature]
    assert hot, "the German clip never fell back: pick speech that fails the greedy decode"
    assert all(tags == ["german"] for tags in hot), hot
    assert all(segment.temperature == 0 for segment in english_result.segments)
    assert "airport" in english_result.text.lower()
    # Which attempt the German window keeps depends on sampling (when every temperature
    # fails, Whisper keeps the best of them), but it never gets the English clip's words.
    assert "airport" not in german_result.text.lower()


def test_a_looping_short_window_is_encoded_again_with_full_padding() -> None:
    # Where a short window is encoded with an input sized to it (not by default, see
    # stenostack.models.whisper.input_sizing), a loop on it falls back to full padding.
    model = RecordingModel(
        resolve_model_dir("whisper-tiny.en"), cpu_threads=2, input_sizing=InputSizing.ALWAYS
    )
    audio = pcm("The museum opens at nine and closes at six.")
    job = model.start_transcription(audio, GREEDY)
    encode = next(job)
    assert isinstance(encode, Encode) and encode.input_frames < WINDOW_FRAMES
    generate = job.send(model.run_batch([encode])[0])
    assert isinstance(generate, Generate)
    assert generate.max_new_tokens < 100  # tied to the clip's few seconds, not 448

    # The one made-up model output in this suite: the decoder "loops" on the short input,
    # repeating a phrase until it hits the window's token limit.
    phrase = model._hf_tokenizer.encode(" the museum", add_special_tokens=False).ids
    loop = (phrase * generate.max_new_tokens)[: generate.max_new_tokens]
    step = job.send(Hypotheses(sequences=[loop], scores=[-0.1], no_speech_prob=0.0))

    assert isinstance(step, Encode) and step.input_frames == WINDOW_FRAMES
    try:  # the rest runs on the real model
        while True:
            step = job.send(model.run_alone(step))
            if isinstance(step, Generate):
                assert step.encoded.shape[0] == WINDOW_FRAMES // 2
    except StopIteration as done:
        transcript: Transcript = done.value
    # The padded decode heard the sentence once, not the loop.
    assert transcript.text.lower().count("museum") == 1, transcript.text
    assert word_error_rate("The museum opens at nine and closes at six.", transcript.text) <= 0.5


def test_a_lone_request_does_not_wait_for_a_batch(model: RecordingModel) -> None:
    scheduler = BatchScheduler("tiny", model, EngineMetrics(), gather_window_s=2.0)
    try:
        audio = pcm("Could you repeat the last number, please?")
        model.transcribe(audio, GREEDY)  # warm
        started = time.perf_counter()
        alone = model.transcribe(audio, GREEDY)
        direct = time.perf_counter() - started

        started = time.perf_counter()
        scheduled = scheduler.submit(model.start_transcription(audio, GREEDY)).future.result()
        assert time.perf_counter() - started < direct + 1.0  # well under the 2 s window
        assert scheduled.text == alone.text

        # While another request is being decoded, a batch waits for it, but only so long.
        with scheduler.preparing():
            started = time.perf_counter()
            ticket = scheduler.submit(model.start_transcription(audio, GREEDY))
            wait([ticket.future], timeout=10)
            waited = time.perf_counter() - started
        assert ticket.future.result().text == alone.text
        assert 2.0 <= waited < 2.0 + direct + 1.0  # one wait, not one per step
    finally:
        scheduler.close()


def test_cancelled_job_stops_and_frees_its_place(
    model: RecordingModel, scheduler: BatchScheduler
) -> None:
    parts: list[str | float] = []
    for _ in range(12):
        parts += ["The children walked to school along the river and counted the boats.", 0.5]
    long_audio = compose(parts).samples
    audio = Speech((np.clip(long_audio, -1, 1) * 32767).astype(np.int16))
    closed = []

    def watched(job: TranscriptionJob) -> TranscriptionJob:
        try:
            return (yield from job)
        finally:
            closed.append(True)

    ticket = scheduler.submit(tagged(watched(model.start_transcription(audio, GREEDY)), "x"))
    while not model.batches:
        time.sleep(0.01)
    ticket.cancel()
    wait([ticket.future], timeout=30)
    assert ticket.future.cancelled()
    assert closed == [True]
    ran = len(model.batches)
    time.sleep(0.3)
    assert len(model.batches) == ran  # nothing more ran for it
    assert ran <= 2  # the call under way when it was cancelled, at most one more


def long_speech(sentences: int) -> tuple[Recording, Speech]:
    """Continuous read speech (pauses under a second), longer than several windows."""
    parts: list[str | float] = [0.4]
    for i in range(sentences):
        parts += [STORY[i % len(STORY)], (0.4, 0.7, 1.0)[i % 3]]
    recording = compose(parts, noise_level=0.002)
    return recording, Speech((np.clip(recording.samples, -1, 1) * 32767).astype(np.int16))


def test_a_long_file_is_cut_at_pauses_into_pieces_of_at_most_a_window() -> None:
    _recording, speech = long_speech(24)
    plan = PiecePlan(lambda _end: speech, lambda _end: True, WHISPER_PIECES)
    pieces = []
    while (piece := plan.next(wait=False)) is not None:
        pieces.append(piece)
    assert len(pieces) >= 4
    assert pieces[0].start == 0 and pieces[-1].end == len(speech.samples) // 160
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start
    for piece in pieces:
        assert 0 < piece.end - piece.start <= WINDOW_FRAMES
    # Every cut is in a pause: as quiet as the noise between sentences, never in a word.
    samples = speech.samples.astype(np.float64)
    loudness = np.sqrt(np.mean(samples**2))
    for piece in pieces[:-1]:
        around_cut = samples[piece.end * 160 - 1280 : piece.end * 160 + 1280]
        assert np.sqrt(np.mean(around_cut**2)) < 0.05 * loudness, piece.end / 100


def test_the_pieces_of_one_long_file_share_decoding_calls_and_stream_in_order(
    model: RecordingModel, scheduler: BatchScheduler
) -> None:
    recording, speech = long_speech(24)
    alone = model.transcribe(speech, GREEDY)
    model.batches.clear()
    deltas: list[TextDelta] = []
    job = model.start_transcription(speech, GREEDY, deltas.append)
    transcript = scheduler.submit(tagged(job, "long")).future.result(timeout=300)

    # Its windows were decoded side by side: several in one call.
    decode_batches = [tags for step, tags in model.batches if isinstance(step, Generate)]
    assert max(len(tags) for tags in decode_batches) >= 4, decode_batches
    assert transcript.text == alone.text
    assert "".join(delta.text for delta in deltas) == transcript.text
    assert word_error_rate(recording.text, transcript.text) <= 0.2, transcript.text
    # Segments are numbered and timed in order, each within the speech.
    assert [segment.id for segment in transcript.segments] == list(range(len(transcript.segments)))
    duration = len(speech.samples) / 16_000
    for before, after in itertools.pairwise(transcript.segments):
        assert before.start <= before.end <= after.start + 0.02, (before, after)
    assert transcript.segments[-1].end <= duration + 0.02
    # Each sentence's first word is heard near where it was spoken.
    for utterance in recording.utterances[:6]:
        first_word = utterance.text.split()[0].strip(",.").lower()
        near = [s for s in transcript.segments if abs(s.start - utterance.start) < 1.5]
        assert any(first_word in s.text.lower() for s in near), (utterance, near)


def test_on_two_cores_two_lanes_run_two_batches_at_once(
    model: RecordingModel, scheduler: BatchScheduler
) -> None:
    assert model.lanes == 2  # two cores here: a thread each
    _recording, speech = long_speech(12)
    alone = model.transcribe(speech, GREEDY)
    model.spans.clear()
    together = scheduler.submit(model.start_transcription(speech, GREEDY)).future.result(60)
    assert together.text == alone.text
    overlapping = [
        (a, b) for a, b in itertools.combinations(model.spans, 2) if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping, model.spans
