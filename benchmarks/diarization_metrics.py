"""Scores for who-spoke-when and who-said-what.

- The diarization error rate (DER) is ``pyannote.metrics``': missed speech, false alarm and
  speaker confusion over the reference's speech time, after the one-to-one map of hypothesis
  labels to reference speakers that gives the fewest errors. Overlapped speech is scored.
  The collar here is NIST's: ``collar`` seconds either side of each reference boundary are not
  scored (``pyannote.metrics`` takes the collar's whole width, so it gets twice this).
- The speaker count is the number of distinct labels.
- The concatenated minimum-permutation word error rate (cpWER, CHiME-6's): each speaker's
  words in time order, the reference and hypothesis speakers paired one to one (Hungarian)
  so that the word errors are fewest (an unpaired speaker's words are all deleted or all
  inserted), and those errors over the reference's words. Text is normalised as the tests'
  ``tests.wer.normalise`` does; ``jiwer`` aligns the words.

A turn is ``(start_s, end_s, speaker)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import jiwer
import numpy as np
from pyannote.core import Annotation, Segment, Timeline  # type: ignore[import-untyped]
from pyannote.metrics.diarization import DiarizationErrorRate
from scipy.optimize import linear_sum_assignment
from tests.wer import normalise

Turn = tuple[float, float, str]

COLLAR_S = 0.25  # NIST's: a quarter second either side of each reference boundary


@dataclass(frozen=True)
class DiarizationErrors:
    """Seconds of scored reference speech and of each kind of error."""

    total: float
    missed: float
    false_alarm: float
    confusion: float

    @property
    def rate(self) -> float:
        errors = self.missed + self.false_alarm + self.confusion
        return errors / self.total if self.total else float(errors > 0)

    @property
    def shares(self) -> tuple[float, float, float]:
        """Missed speech, false alarm and confusion, each a share of the reference speech."""
        total = self.total or float("inf")  # nothing scored: no share of anything
        return self.missed / total, self.false_alarm / total, self.confusion / total

    def breakdown(self) -> str:
        """``DER  9.7% (missed  4.6%, false alarm  1.6%, confusion  3.5%)``."""
        missed, false_alarm, confusion = (percent(share) for share in self.shares)
        return (
            f"DER {percent(self.rate)} (missed {missed}, false alarm {false_alarm}, "
            f"confusion {confusion})"
        )

    def __add__(self, other: DiarizationErrors) -> DiarizationErrors:
        return DiarizationErrors(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
        )


NO_ERRORS = DiarizationErrors(0.0, 0.0, 0.0, 0.0)


def percent(value: float) -> str:
    """A share as `` 9.7%`` (five characters before the sign, for tables)."""
    return f"{100 * value:5.1f}%"


def diarization_errors(
    reference: Iterable[Turn],
    hypothesis: Iterable[Turn],
    collar: float = COLLAR_S,
    duration: float | None = None,
) -> DiarizationErrors:
    """The DER's parts for one recording; ``duration`` bounds the scored time (by default
    the extent of both sides' turns)."""
    ref, hyp = _annotation(reference), _annotation(hypothesis)
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)
    if duration is None:
        extent = ref.get_timeline().union(hyp.get_timeline()).extent()
        uem = Timeline([extent]) if extent else Timeline([Segment(0.0, 1e-3)])
    else:
        uem = Timeline([Segment(0.0, duration)])
    parts = metric(ref, hyp, uem=uem, detailed=True)
    return DiarizationErrors(
        total=float(parts["total"]),
        missed=float(parts["missed detection"]),
        false_alarm=float(parts["false alarm"]),
        confusion=float(parts["confusion"]),
    )


def diarization_error_rate(
    reference: Iterable[Turn],
    hypothesis: Iterable[Turn],
    collar: float = COLLAR_S,
    duration: float | None = None,
) -> float:
    """(missed + false alarm + confusion) / reference speech, overlap scored, ``collar``
    seconds either side of each reference boundary left out."""
    return diarization_errors(reference, hypothesis, collar, duration).rate


def speaker_count(turns: Iterable[Turn]) -> int:
    return len({speaker for _start, _end, speaker in turns})


def words_by_speaker(turns: Iterable[tuple[float, float, str, str]]) -> dict[str, str]:
    """Each speaker's text, their turns ``(start, end, speaker, text)`` in time order."""
    texts: dict[str, list[str]] = {}
    for _start, _end, speaker, text in sorted(turns, key=lambda turn: (turn[0], turn[1])):
        texts.setdefault(speaker, []).append(text.strip())
    return {speaker: " ".join(t for t in said if t) for speaker, said in texts.items()}


@dataclass(frozen=True)
class CpWer:
    """Word errors under the best speaker pairing, and the reference's word count."""

    errors: int
    words: int
    pairing: dict[str, str | None]  # reference speaker -> hypothesis speaker (None: unpaired)

    @property
    def rate(self) -> float:
        return self.errors / self.words if self.words else float(self.errors > 0)

    def __add__(self, other: CpWer) -> CpWer:
        return CpWer(self.errors + other.errors, self.words + other.words, {})


def cp_wer_errors(reference: Mapping[str, str], hypothesis: Mapping[str, str]) -> CpWer:
    """cpWER's errors and words: ``reference`` and ``hypothesis`` map a speaker to all of
    their words in time order (as ``words_by_speaker`` gives)."""
    refs = {speaker: normalise(text) for speaker, text in reference.items()}
    hyps = {speaker: normalise(text) for speaker, text in hypothesis.items()}
    ref_names, hyp_names = sorted(refs), sorted(hyps)
    size = max(len(ref_names), len(hyp_names), 1)
    # Rows: reference speakers then empty ones; columns: hypothesis speakers then empty ones.
    cost = np.zeros((size, size), dtype=np.int64)
    for row in range(size):
        for column in range(size):
            ref = refs[ref_names[row]] if row < len(ref_names) else ""
            hyp = hyps[hyp_names[column]] if column < len(hyp_names) else ""
            cost[row, column] = _word_errors(ref, hyp)
    rows, columns = linear_sum_assignment(cost)
    pairing: dict[str, str | None] = {
        ref_names[row]: hyp_names[column] if column < len(hyp_names) else None
        for row, column in zip(rows, columns, strict=True)
        if row < len(ref_names)
    }
    words = sum(len(text.split()) for text in refs.values())
    return CpWer(int(cost[rows, columns].sum()), words, pairing)


def cp_wer(reference: Mapping[str, str], hypothesis: Mapping[str, str]) -> float:
    """The concatenated minimum-permutation word error rate (see the module's notes)."""
    return cp_wer_errors(reference, hypothesis).rate


def _word_errors(reference: str, hypothesis: str) -> int:
    if not reference.split() or not hypothesis.split():
        return len(reference.split()) + len(hypothesis.split())
    output = jiwer.process_words(reference, hypothesis)
    return int(output.substitutions + output.deletions + output.insertions)


def _annotation(turns: Iterable[Turn]) -> Annotation:
    annotation = Annotation()
    for index, (start, end, speaker) in enumerate(sorted(turns)):
        if end > start:
            annotation[Segment(float(start), float(end)), index] = speaker
    return annotation


def rttm_lines(turns: Sequence[Turn], recording: str) -> list[str]:
    """NIST RTTM ``SPEAKER`` lines for ``turns`` of ``recording`` (channel 1)."""
    return [
        f"SPEAKER {recording} 1 {start:.3f} {end - start:.3f} <NA> <NA> {speaker} <NA> <NA>"
        for start, end, speaker in sorted(turns)
        if end > start
    ]
