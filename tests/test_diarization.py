"""Who said what, through the official SDK: ``diarized_json`` on a conversation of real
people, known speakers by reference clip, streamed segments, speakers in the other formats,
the caller's bounds on the count, and clear 400s for what cannot be used."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import openai
import pytest
from benchmarks.conversations import real_conversations, real_speakers
from benchmarks.diarization_metrics import NO_ERRORS, cp_wer, diarization_errors
from openai import OpenAI
from openai.types.audio import TranscriptionDiarized

from tests.servers import RunningServer, metric
from tests.speech import RATE, Samples, compose, wav_bytes

# The benchmark's conversation of three real people (Michael McAuliffe, JFK and a LibriVox
# reader, 60 s, with pauses and two short overlaps), and a reader's sentence as his
# reference clip.
CONVERSATION = "real-05"
PERSON = "reader"


@dataclass(frozen=True)
class Conversation:
    audio: Samples
    turns: list[tuple[float, float, str]]  # start, end, who
    words: dict[str, str]  # who -> what they said, in order
    voice: Samples  # a clip of PERSON's voice


@pytest.fixture(scope="module")
def conversation() -> Conversation:
    (chosen,) = [c for c in real_conversations() if c.name == CONVERSATION]
    assert len(chosen.speakers) == 3 and PERSON in chosen.speakers
    clip = real_speakers()[PERSON][0].samples
    return Conversation(chosen.float_samples(), chosen.reference, chosen.words, clip)


def attributed(turns: Sequence[tuple[float, float, str]], segments: Sequence[object]) -> float:
    """The share of the conversation's speech time given to the right speaker, under the
    best one-to-one map of labels to people (1 - a diarization error rate without misses)."""
    labels = sorted({s.speaker for s in segments})  # type: ignore[attr-defined]
    people = sorted({who for _, _, who in turns})
    best = 0.0
    for chosen in itertools.permutations(people, min(len(labels), len(people))):
        mapping = dict(zip(labels, chosen, strict=False))
        right = sum(
            max(0.0, min(end, s.end) - max(start, s.start))  # type: ignore[attr-defined]
            for start, end, who in turns
            for s in segments
            if mapping.get(s.speaker) == who  # type: ignore[attr-defined]
        )
        best = max(best, right)
    return best / sum(end - start for start, end, _ in turns)


def diarized(
    client: OpenAI, wav: bytes, model: str = "whisper-1", **fields: object
) -> TranscriptionDiarized:
    """``wav`` as ``diarized_json``, with any other form ``fields``."""
    return client.audio.transcriptions.create(
        model=model,
        file=("meeting.wav", wav),
        response_format="diarized_json",
        chunking_strategy="auto",
        extra_body=fields or None,
    )


def data_url(samples: Samples) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples)).decode()


def test_a_conversation_of_real_people_comes_back_speaker_by_speaker(
    client: OpenAI, conversation: Conversation
) -> None:
    result = diarized(client, wav_bytes(conversation.audio))
    assert result.task == "transcribe"
    assert result.duration == pytest.approx(len(conversation.audio) / RATE, abs=0.01)
    labels = [segment.speaker for segment in result.segments]
    assert sorted(set(labels)) == ["A", "B", "C"]
    assert list(dict.fromkeys(labels)) == ["A", "B", "C"]  # lettered as they first speak
    assert [s.id for s in result.segments] == [f"seg_{n}" for n in range(len(labels))]
    assert all(s.type == "transcript.text.segment" and s.start < s.end for s in result.segments)
    assert attributed(conversation.turns, result.segments) >= 0.85
    # Each person's own words under their label (the benchmark measured 14.5 % here).
    said: dict[str, str] = {}
    for segment in result.segments:
        said[segment.speaker] = f"{said.get(segment.speaker, '')} {segment.text}"
    assert cp_wer(conversation.words, said) < 0.25
    assert " ".join(s.text for s in result.segments).split() == result.text.split()


def test_the_benchmarks_real_conversations_near_the_target(client: OpenAI) -> None:
    """Issue 14's target on the 12 conversations of six real people (benchmarks.diarization):
    DER at most 10 % (collar 0.25 s), the number of speakers right on nine in ten. The
    benchmark measured 9.7 % and 11 of 12 on this machine; the DER bound here leaves one
    point for another CPU's int8 arithmetic changing a word or two."""
    errors, right = NO_ERRORS, 0
    conversations = real_conversations()
    for conversation in conversations:
        result = diarized(client, conversation.wav())
        hypothesis = [(s.start, s.end, s.speaker) for s in result.segments]
        errors += diarization_errors(
            conversation.reference, hypothesis, duration=conversation.duration
        )
        right += len({s.speaker for s in result.segments}) == len(conversation.speakers)
    assert len(conversations) == 12
    assert errors.rate <= 0.11, errors
    assert right >= 11


def test_known_speakers_are_named_by_their_reference_clips(
    client: OpenAI, conversation: Conversation
) -> None:
    result = diarized(
        client,
        wav_bytes(conversation.audio),
        known_speaker_names=["Marianne"],
        known_speaker_references=[data_url(conversation.voice)],
    )
    named = [s for s in result.segments if s.speaker == "Marianne"]
    reader_turns = [turn for turn in conversation.turns if turn[2] == PERSON]
    inside = sum(
        max(0.0, min(end, s.end) - max(start, s.start))
        for s in named
        for start, end, _ in reader_turns
    )
    assert named and inside >= 0.85 * sum(s.end - s.start for s in named)
    assert sorted({s.speaker for s in result.segments} - {"Marianne"}) == ["A", "B"]


def test_a_stream_sends_each_segment_with_its_speaker_then_the_text(
    client: OpenAI, conversation: Conversation
) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="whisper-1",
            file=("meeting.wav", wav_bytes(conversation.audio)),
            response_format="diarized_json",
            stream=True,
        )
    )
    kinds = [event.type for event in events]
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.done") == 1
    segments = [e for e in events if e.type == "transcript.text.segment"]
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert len({s.speaker for s in segments}) == 3
    assert [d.segment_id for d in deltas] == [s.id for s in segments]
    assert "".join(d.delta for d in deltas) == events[-1].text  # type: ignore[union-attr]
    assert attributed(conversation.turns, segments) >= 0.85


def test_speakers_show_in_verbose_json_subtitles_and_text(
    client: OpenAI, conversation: Conversation
) -> None:
    upload = ("meeting.wav", wav_bytes(conversation.audio))
    extra = {"diarize": "true"}
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=upload, response_format="verbose_json", extra_body=extra
    )
    speakers = [segment.speaker for segment in verbose.segments or []]  # type: ignore[attr-defined]
    assert set(speakers) == {"A", "B", "C"}
    vtt = client.audio.transcriptions.create(
        model="whisper-1", file=upload, response_format="vtt", extra_body=extra
    )
    assert "<v A>" in vtt and "<v C>" in vtt
    srt = client.audio.transcriptions.create(
        model="whisper-1", file=upload, response_format="srt", extra_body=extra
    )
    assert "\nA: " in srt and "\nB: " in srt
    text = client.audio.transcriptions.create(
        model="whisper-1", file=upload, response_format="text", extra_body=extra
    )
    lines = text.strip().splitlines()
    assert lines[0].startswith("A: ") and {line[:3] for line in lines} == {"A: ", "B: ", "C: "}
    # Without diarize, the same formats are as before: no speakers.
    plain = client.audio.transcriptions.create(
        model="whisper-1", file=upload, response_format="vtt"
    )
    assert "<v " not in plain


def test_the_callers_bounds_on_the_number_of_speakers_win(
    client: OpenAI, conversation: Conversation
) -> None:
    two = diarized(client, wav_bytes(conversation.audio), max_speakers=2)
    assert len({s.speaker for s in two.segments}) == 2
    one = diarized(client, wav_bytes(conversation.audio), max_speakers=1)
    assert {s.speaker for s in one.segments} == {"A"}
    # min_speakers works on the voices found (tests/test_diarization_units.py): a voice
    # forced apart that is never heard above the others has no segment of its own.


def test_a_model_without_word_times_is_diarized_too(
    client: OpenAI, conversation: Conversation
) -> None:
    result = diarized(client, wav_bytes(conversation.audio), model="moonshine-base")
    assert len({s.speaker for s in result.segments}) == 3
    assert attributed(conversation.turns, result.segments) >= 0.8


def test_diarization_time_is_counted(engine: RunningServer, client: OpenAI) -> None:
    before = metric(engine, "stenostack_diarization_duration_seconds_count")
    speech = compose([0.3, "Please send me the report before the end of the week.", 0.3])
    client.audio.transcriptions.create(
        model="whisper-1",
        file=("a.wav", wav_bytes(speech.samples)),
        response_format="diarized_json",
    )
    assert metric(engine, "stenostack_diarization_duration_seconds_count") == before + 1
    assert metric(engine, "stenostack_diarization_audio_seconds_total") > 0


SILENCE = np.zeros(3 * RATE, np.float32)
SPEECH_CLIP = compose([0.2, "Please send me the report before the end of the week.", 0.2]).samples


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"known_speaker_names": ["Ann"]}, "known_speaker_references[]", "each known speaker needs"),
        ({"known_speaker_names": ["Ann"], "known_speaker_references": ["https://example.com/a.wav"]}, "known_speaker_references[]", "data URL"),
        ({"known_speaker_names": ["Ann"], "known_speaker_references": ["data:audio/wav;base64,@@@"]}, "known_speaker_references[]", "no valid base64"),
        ({"known_speaker_names": ["Ann"], "known_speaker_references": ["data:audio/wav;base64,aGVsbG8gd29ybGQ="]}, "known_speaker_references[]", "not a usable audio clip"),
        ({"known_speaker_names": ["Ann"], "known_speaker_references": [data_url(SILENCE)]}, "known_speaker_references[]", "cannot be used"),
        ({"known_speaker_names": ["Ann"], "known_speaker_references": [data_url(SPEECH_CLIP[: RATE])]}, "known_speaker_references[]", "between 2 and 10 seconds"),
        ({"known_speaker_names": list("ABCDE"), "known_speaker_references": [data_url(SPEECH_CLIP)] * 5}, "known_speaker_names[]", "At most 4"),
        ({"known_speaker_names": ["Ann", "Ann"], "known_speaker_references": [data_url(SPEECH_CLIP)] * 2}, "known_speaker_names[]", "must differ"),
        ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers", "more than max_speakers"),
        ({"max_speakers": "0"}, "max_speakers", "whole number"),
    ],
)  # fmt: skip
def test_what_cannot_be_used_is_a_clear_400(
    client: OpenAI, fields: dict[str, object], param: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model="whisper-1",
            file=("a.wav", wav_bytes(SPEECH_CLIP)),
            response_format="diarized_json",
            extra_body=fields,
        )
    error = raised.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert says in error["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"known_speaker_names": ["Ann"], "known_speaker_references": ["data:audio/wav;base64,aGk="]}, "known_speaker_names[]"),
        ({"diarize": "true", "response_format": "json"}, "diarize"),
        ({"diarize": "true", "response_format": "text", "stream": "true"}, "diarize"),
        ({"response_format": "diarized_json", "timestamp_granularities[]": "word"}, "timestamp_granularities[]"),
    ],
)  # fmt: skip
def test_speaker_fields_out_of_place_are_a_clear_400(
    client: OpenAI, fields: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model="whisper-1", file=("a.wav", wav_bytes(SPEECH_CLIP)), extra_body=fields
        )
    assert isinstance(raised.value.body, dict) and raised.value.body["param"] == param


def test_translations_have_no_speakers(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.translations.create(
            model="whisper-base",
            file=("a.wav", wav_bytes(SPEECH_CLIP)),
            extra_body={"response_format": "diarized_json"},
        )
    assert isinstance(raised.value.body, dict) and raised.value.body["param"] == "response_format"
