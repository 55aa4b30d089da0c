"""moonshine-base served beside the Whisper models: the official SDK's transcription,
streaming and realtime calls on it, its honest capabilities, and batching across requests."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import httpx
import openai
import pytest
from openai import OpenAI

from stenostack.models.sources import resolve_model_dir
from tests.realtime_client import realtime_session
from tests.servers import RunningServer, metric
from tests.speech import Recording, compose, raw_pcm, wav_bytes
from tests.texts import BECKETT, COFFEE_ORDER, MEETING_MOVED, STORY
from tests.wer import normalise, word_error_rate

MODEL = "moonshine-base"
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


@pytest.fixture(scope="module")
def story() -> Recording:
    """About a minute of read speech with pauses: several pieces."""
    parts: list[str | float] = [0.5]
    for sentence in STORY[:8]:
        parts += [sentence, 0.7]
    return compose(parts, noise_level=0.002)


def test_models_lists_it_with_what_it_can_do(engine: RunningServer) -> None:
    models = {entry["id"]: entry for entry in httpx.get(f"{engine.url}/v1/models").json()["data"]}
    assert {"whisper-base", "whisper-tiny.en", MODEL} <= set(models)
    capabilities = models[MODEL]["capabilities"]
    assert capabilities["languages"] == ["en"]
    assert capabilities["translation"] is False
    assert capabilities["word_timestamps"] is False
    assert capabilities["segment_timestamps"] is True


def test_real_speech(client: OpenAI) -> None:
    """A person reading Beckett (the recording that ships with the bundled weights)."""
    recording = resolve_model_dir(MODEL).parent.parent / "test-data" / "beckett.wav"
    result = client.audio.transcriptions.create(
        model=MODEL, file=("beckett.wav", recording.read_bytes())
    )
    assert word_error_rate(BECKETT, result.text) < 0.25, result.text


def test_a_word_it_would_end_before_is_read(client: OpenAI) -> None:
    """The router's health-check "Hello." (espeak-ng), which Moonshine's first choice ends
    before any word; the engine reads it, as whisper-base does."""
    clip = resources.files("stenostack.router").joinpath("healthcheck.wav").read_bytes()
    whisper = client.audio.transcriptions.create(model="whisper-base", file=("h.wav", clip))
    moonshine = client.audio.transcriptions.create(model=MODEL, file=("h.wav", clip))
    assert normalise(moonshine.text) == normalise(whisper.text) != "", (moonshine, whisper)


def test_verbose_json_has_timed_segments_in_order(client: OpenAI, story: Recording) -> None:
    result = client.audio.transcriptions.create(
        model=MODEL, file=("story.wav", wav_bytes(story.samples)), response_format="verbose_json"
    )
    assert word_error_rate(story.text, result.text) <= 0.1, result.text
    assert result.language == "english" and result.duration == pytest.approx(story.duration, 0.01)
    segments = result.segments or []
    assert len(segments) >= 2
    for before, after in itertools.pairwise(segments):
        assert before.end <= after.start
    # Each segment's time is where its words were spoken: its first words are the ones of
    # the sentence that starts nearest to it.
    for segment in segments:
        assert 0 <= segment.start < segment.end <= story.duration + 0.05
        nearest = min(story.utterances, key=lambda u: abs(u.start - segment.start))
        first_word = normalise(segment.text).split()[0]
        assert first_word in normalise(nearest.text).split(), (segment, nearest)
    assert normalise(" ".join(s.text for s in segments)) == normalise(result.text)


def test_streamed_text_is_the_transcript(client: OpenAI, story: Recording) -> None:
    events = list(
        client.audio.transcriptions.create(
            model=MODEL, file=("story.wav", wav_bytes(story.samples)), stream=True
        )
    )
    deltas = [event.delta for event in events if event.type == "transcript.text.delta"]
    done = [event for event in events if event.type == "transcript.text.done"]
    assert len(deltas) >= 2 and len(done) == 1
    assert "".join(deltas) == done[0].text
    assert word_error_rate(story.text, done[0].text) <= 0.1, done[0].text


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"timestamp_granularities": ["word"], "response_format": "verbose_json"},
         "timestamp_granularities[]"),
        ({"language": "fr"}, "language"),
    ],
)  # fmt: skip
def test_what_it_cannot_do_is_a_400_naming_the_parameter(
    client: OpenAI, arguments: dict[str, object], param: str
) -> None:
    clip = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model=MODEL, file=("c.wav", clip), **arguments)  # type: ignore[call-overload]
    assert refused.value.body["param"] == param  # type: ignore[index]


def test_it_does_not_translate(client: OpenAI) -> None:
    clip = wav_bytes(compose([0.3, COFFEE_ORDER, 0.3]).samples)
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.translations.create(model=MODEL, file=("c.wav", clip))
    assert refused.value.body["param"] == "model"  # type: ignore[index]


def test_concurrent_requests_share_model_calls(engine: RunningServer, client: OpenAI) -> None:
    """Eight clips of the same length bucket sent at once: their steps run batched."""
    texts = [COFFEE_ORDER, MEETING_MOVED] * 4
    clips = [wav_bytes(compose([0.3, text, 0.3], speed=150).samples) for text in texts]
    encodes = metric(engine, "stenostack_batch_size_count", model=MODEL, step="Encode")
    rows = metric(engine, "stenostack_batch_size_sum", model=MODEL, step="Encode")

    def send(clip: bytes) -> str:
        return client.audio.transcriptions.create(model=MODEL, file=("c.wav", clip)).text

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, clips))
    for text, result in zip(texts, results, strict=True):
        assert word_error_rate(text, result) <= 0.15, result
    calls = metric(engine, "stenostack_batch_size_count", model=MODEL, step="Encode") - encodes
    encoded = metric(engine, "stenostack_batch_size_sum", model=MODEL, step="Encode") - rows
    assert encoded == len(clips) and calls < len(clips), (calls, encoded)


def test_realtime_sends_interim_text_while_the_turn_is_spoken(engine: RunningServer) -> None:
    """Moonshine's cost grows with the audio, so interim results are on by default."""
    spoken = f"{COFFEE_ORDER} {MEETING_MOVED}"
    audio = raw_pcm(compose([0.5, COFFEE_ORDER, MEETING_MOVED, 1.5]).samples)
    chunk = 4800  # 100 ms of 24 kHz PCM16
    with realtime_session(engine.url) as session:
        session.recv()
        settings = {"model": MODEL}
        session.send(
            "session.update",
            session={"type": "transcription", "audio": {"input": {"transcription": settings}}},
        )
        shown = session.recv()["session"]["audio"]["input"]["transcription"]
        assert shown["interim_results"] is True
        started = time.monotonic()
        for index, start in enumerate(range(0, len(audio), chunk)):
            time.sleep(max(started + index * 0.1 - time.monotonic(), 0))
            session.append(audio[start : start + chunk], chunk_bytes=chunk)
        events = session.until("conversation.item.done")
    kinds = [event["type"] for event in events]
    assert DELTA in kinds[: kinds.index("input_audio_buffer.speech_stopped")], kinds
    completed = events[kinds.index(COMPLETED)]["transcript"]
    joined = "".join(event["delta"] for event in events if event["type"] == DELTA)
    # What was sent while speaking leads up to the final text: two passes can agree on a
    # word the final text then corrects ("I'm would like" from the first second of "I
    # would like"), which .completed replaces, so the bound is on words, not an exact prefix.
    sent_words = normalise(joined).split()
    assert len(sent_words) >= 4, joined
    final_words = normalise(completed).split()[: len(sent_words)]
    assert word_error_rate(" ".join(final_words), " ".join(sent_words)) <= 0.2, (joined, completed)
    assert word_error_rate(spoken, completed) <= 0.15, completed
