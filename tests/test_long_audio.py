"""A multi-minute file with pauses, long silences and noise comes back whole and in place."""

from __future__ import annotations

import collections

import pytest
from openai import OpenAI

from tests.speech import Recording, compose, wav_bytes
from tests.texts import LONG_SILENCE, STORY
from tests.wer import normalise, word_error_rate


@pytest.fixture(scope="module")
def story() -> Recording:
    parts: list[str | float] = [1.0]
    for index, sentence in enumerate(STORY):
        parts.append(sentence)
        parts.append(LONG_SILENCE if index in (5, 11) else 0.6 + (index % 3) * 0.4)
    return compose(parts, noise_level=0.002)


def four_grams(text: str) -> collections.Counter[tuple[str, ...]]:
    words = text.split()
    return collections.Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3))


def speech_regions(recording: Recording, merge_gap: float = 2.5) -> list[tuple[float, float]]:
    regions: list[tuple[float, float]] = []
    for utterance in recording.utterances:
        if regions and utterance.start - regions[-1][1] < merge_gap:
            regions[-1] = (regions[-1][0], utterance.end)
        else:
            regions.append((utterance.start, utterance.end))
    return regions


def test_long_file_is_transcribed_whole_and_in_place(client: OpenAI, story: Recording) -> None:
    assert story.duration > 120
    result = client.audio.transcriptions.create(
        model="whisper-tiny.en",
        file=("story.wav", wav_bytes(story.samples)),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.duration == pytest.approx(story.duration, abs=0.05)
    error_rate = word_error_rate(story.text, result.text)
    print(f"long audio ({story.duration:.0f} s): WER {error_rate:.3f}")
    assert error_rate <= 0.2, result.text
    words = result.words or []

    # Nothing lost or said twice at window boundaries: each sentence is found, in place,
    # among the words timed within it (about as many words as the script has, mostly the
    # same ones; tiny.en mishears a word or two differently on different CPUs), and no
    # four words occur more often than in the script.
    for utterance in story.utterances:
        heard = " ".join(
            w.word for w in words
            if utterance.start - 0.5 <= (w.start + w.end) / 2 <= utterance.end + 0.5
        )  # fmt: skip
        expected_words = len(normalise(utterance.text).split())
        heard_words = len(normalise(heard).split())
        assert 0.6 * expected_words <= heard_words <= 1.5 * expected_words, (utterance, heard)
        assert word_error_rate(utterance.text, heard) <= 0.7, (utterance.text, heard)
    spoken = four_grams(normalise(result.text))
    script = four_grams(normalise(story.text))
    repeated = {gram: n for gram, n in spoken.items() if gram in script and n > script[gram]}
    assert not repeated, repeated

    # Segments and words sit on the file's timeline, where the speech is: none in the
    # long silences.
    assert result.segments and result.words
    assert max(s.seek for s in result.segments) > 0
    regions = speech_regions(story)
    tolerance = 1.0
    for segment in result.segments:
        assert any(
            start - tolerance <= segment.start and segment.end <= end + tolerance
            for start, end in regions
        ), f"segment {segment.start}-{segment.end} {segment.text!r} is outside the speech"
    for word in words:
        middle = (word.start + word.end) / 2
        assert any(start - 0.5 <= middle <= end + 0.5 for start, end in regions), word
    ids = [s.id for s in result.segments]
    assert ids == list(range(len(ids)))
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    # Each sentence begins where a word begins, within the tolerance.
    word_starts = [w.start for w in words]
    for utterance in story.utterances:
        nearest = min(word_starts, key=lambda t: abs(t - utterance.start))
        assert abs(nearest - utterance.start) <= tolerance, (utterance.text, nearest)


def test_silence_and_noise_only_give_an_empty_transcript(client: OpenAI) -> None:
    quiet = compose([40.0], noise_level=0.002)
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=("quiet.wav", wav_bytes(quiet.samples)),
        response_format="verbose_json",
    )
    assert result.text == "" and result.segments == []
    assert result.duration == pytest.approx(40.0, abs=0.05)
