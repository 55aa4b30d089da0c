"""The diarization model's parts on their own: the join to a transcript by time, the
clustering's bounds, the windows' plan."""

from __future__ import annotations

import numpy as np

from stenostack.models.base import Segment, Word
from stenostack.models.diarization.attribution import SpeakerAttribution
from stenostack.models.diarization.base import Diarization, SpeakerCount, SpeakerTurn
from stenostack.models.diarization.clustering import cluster_voices, unit
from stenostack.models.diarization.segmentation import (
    FRAMES_PER_WINDOW,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    WindowPlan,
)


def segment(text: str, start: float, end: float, words: list[Word] | None = None) -> Segment:
    return Segment(0, 0, start, end, text, [1, 2, 3], 0.0, -0.2, 1.2, 0.01, words or [])


def words(*timed: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end, 0.9) for text, start, end in timed]


TWO_SPEAKERS = Diarization([SpeakerTurn(0.0, 2.0, speaker=7), SpeakerTurn(2.1, 4.0, speaker=3)])


def test_a_segment_is_split_where_its_words_change_speaker() -> None:
    said = segment(
        " Ever tried, ever failed. No matter, try again.",
        0.0,
        4.0,
        words(("Ever", 0.0, 0.4), ("tried", 0.4, 0.9), ("ever", 1.0, 1.3), ("failed", 1.3, 1.9),
              ("No", 2.2, 2.4), ("matter", 2.4, 2.9), ("try", 3.0, 3.3), ("again", 3.3, 3.8)),
    )  # fmt: skip
    attribution = SpeakerAttribution(TWO_SPEAKERS)
    parts = attribution.split(said)
    # Each part spans its words, out to its speaker's turn where the turn goes further: A's
    # last word ends at 1.9 in a turn that ends at 2.0; B's first begins at 2.2 in one that
    # began at 2.1. The last part's end waits for what follows, here nothing: its turn's.
    assert [(p.speaker, p.text, p.start, p.end) for p in parts] == [
        ("A", " Ever tried, ever failed.", 0.0, 2.0),
        ("B", " No matter, try again.", 2.1, 3.8),
    ]
    attribution.finish()
    assert parts[1].end == 4.0
    assert [len(p.words) for p in parts] == [4, 4]
    assert parts[0].tokens == said.tokens and parts[1].tokens == []


def test_speakers_are_lettered_in_order_of_first_appearance_or_named() -> None:
    attribution = SpeakerAttribution(
        Diarization(
            [
                SpeakerTurn(0, 1, 5),
                SpeakerTurn(1, 2, 2),
                SpeakerTurn(2, 3, 9),
                SpeakerTurn(3, 4, 5),
            ],
            names={9: "Ada"},
        )
    )
    labels = [
        attribution.split(segment(f" Word {n}.", n + 0.1, n + 0.9))[0].speaker for n in range(4)
    ]
    assert labels == ["A", "B", "Ada", "A"]


def test_without_word_times_a_segment_is_split_at_estimated_word_times() -> None:
    # A model without word timestamps (Moonshine): the words are spread over the segment.
    parts = SpeakerAttribution(TWO_SPEAKERS).split(segment(" one two three four", 0.0, 4.0))
    assert [(p.speaker, p.text) for p in parts] == [("A", " one two"), ("B", " three four")]
    assert all(p.words == [] for p in parts)


def test_a_word_between_turns_goes_to_the_nearest_and_no_turns_to_one_speaker() -> None:
    attribution = SpeakerAttribution(TWO_SPEAKERS)
    first = attribution.split(segment(" Hi.", 0.5, 0.8))
    gap = attribution.split(segment(" Hm.", 2.07, 2.09))  # nearer the second turn
    assert [p.speaker for p in first + gap] == ["A", "B"]
    nobody = SpeakerAttribution(Diarization([])).split(segment(" Hello there.", 0.0, 1.0))
    assert [(p.speaker, p.text) for p in nobody] == [("A", " Hello there.")]


def test_clustering_finds_the_voices_and_obeys_the_callers_bounds() -> None:
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(3, 64)).astype(np.float32))
    voices = unit(
        np.repeat(centres, 6, axis=0) + 0.05 * rng.normal(size=(18, 64)).astype(np.float32)
    )
    found = cluster_voices(voices, 0.6, SpeakerCount(), 2)
    assert len(set(found.tolist())) == 3
    assert len(set(found[:6].tolist())) == 1  # one voice's prints stay together
    assert len(set(cluster_voices(voices, 0.6, SpeakerCount(maximum=2), 2).tolist())) == 2
    assert len(set(cluster_voices(voices, 0.6, SpeakerCount(minimum=4), 2).tolist())) == 4
    # One print of a fourth voice is too little to be a speaker of its own.
    stray = unit(rng.normal(size=(1, 64)).astype(np.float32))
    with_stray = cluster_voices(np.concatenate([voices, stray]), 0.6, SpeakerCount(), 2)
    assert len(set(with_stray.tolist())) == 3


def test_windows_cover_the_audio_on_one_frame_grid() -> None:
    short = WindowPlan(3 * SAMPLE_RATE, step_frames=296)
    assert (
        short.count == 1 and len(short.cut(np.ones(3 * SAMPLE_RATE, np.int16), 0)) == WINDOW_SAMPLES
    )
    long = WindowPlan(60 * SAMPLE_RATE, step_frames=296)
    last = long.start(long.count - 1)
    assert last + WINDOW_SAMPLES >= 60 * SAMPLE_RATE > last + WINDOW_SAMPLES - long.step_samples
    assert long.total_frames < (long.count - 1) * long.step_frames + FRAMES_PER_WINDOW


def test_parts_widen_to_their_turn_but_never_over_the_same_speakers_next() -> None:
    attribution = SpeakerAttribution(Diarization([SpeakerTurn(0.5, 6.0, speaker=1)]))
    first = attribution.split(
        segment(" One two.", 1.0, 2.0, words(("One", 1.0, 1.4), ("two", 1.5, 2.0)))
    )
    second = attribution.split(segment(" Three.", 3.0, 3.5, words(("Three", 3.0, 3.5))))
    attribution.finish()
    assert [(p.start, p.end) for p in first + second] == [(0.5, 3.0), (3.0, 5.5)]
