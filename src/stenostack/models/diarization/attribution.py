"""A transcript joined to a diarization by time: each word goes to the speaker heard most
while it was said, and a segment is split where its words change speaker.

Family-neutral: a model with word timestamps gives the words' own times; for one without,
a segment's words are spread over its time in proportion to their length (an estimate,
documented in docs/diarization.md). Speakers are labelled "A", "B", ... in order of first
appearance, as OpenAI labels them, or by a known speaker's name.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import string
from dataclasses import dataclass

from stenostack.models.base import Segment, Word
from stenostack.models.diarization.base import Diarization, SpeakerTurn

# A part's edges move out to its speaker's turn by at most this much.
MAX_WIDEN_SECONDS = 2.0


@dataclass(frozen=True)
class _Timed:
    word: Word
    speaker: int | None


class SpeakerAttribution:
    """Splits segments, in transcript order, into single-speaker segments."""

    def __init__(self, diarization: Diarization) -> None:
        self._turns = sorted(diarization.turns, key=lambda turn: turn.start)
        self._starts = [turn.start for turn in self._turns]
        self._longest = max((turn.end - turn.start for turn in self._turns), default=0.0)
        # For each i, the turn among the first i that ends last: the nearest one before.
        self._latest_before: list[int | None] = [None]
        for index, turn in enumerate(self._turns):
            latest = self._latest_before[-1]
            ends_later = latest is None or turn.end > self._turns[latest].end
            self._latest_before.append(index if ends_later else latest)
        self._names = diarization.names
        self._labels: dict[int | None, str] = {}
        self._last: int | None = None
        # The last part given, its speaker and its last word: its end may still grow.
        self._held: tuple[Segment, int | None, Word] | None = None

    def split(self, segment: Segment) -> list[Segment]:
        """``segment`` as one or more segments with a ``speaker`` each. The last one's end
        may still move out (see :meth:`_widen`) until the next call or :meth:`finish`."""
        timed_words = bool(segment.words)
        words = segment.words or _estimated_words(segment)
        if not words:
            return []
        timed = [_Timed(word, self._speaker_of(word)) for word in words]
        runs: list[list[_Timed]] = []
        for item in timed:
            if runs and runs[-1][0].speaker == item.speaker:
                runs[-1].append(item)
            else:
                runs.append([item])
        # Each part's text is cut from the segment's at its first word, so that spacing and
        # punctuation stay as the model wrote them.
        positions = _word_starts(segment.text, [item.word.word for item in timed])
        run_firsts = itertools.accumulate([0] + [len(run) for run in runs[:-1]])
        starts = [positions[first] for first in run_firsts]
        parts: list[Segment] = []
        for index, run in enumerate(runs):
            first, last = index == 0, index == len(runs) - 1
            text = segment.text[0 if first else starts[index] : None if last else starts[index + 1]]
            parts.append(
                dataclasses.replace(
                    segment,
                    # Timed words say when the speaker spoke more closely than the
                    # segment, which may begin in the silence before them.
                    start=run[0].word.start if timed_words or not first else segment.start,
                    end=run[-1].word.end if timed_words or not last else segment.end,
                    text=text,
                    # The tokens are not split: they stay with the segment's first part.
                    tokens=segment.tokens if first else [],
                    words=[item.word for item in run] if segment.words else [],
                    speaker=self._label(run[0].speaker),
                )
            )
            self._widen(parts[-1], run[0].speaker, run[0].word, run[-1].word)
        return parts

    def finish(self) -> None:
        """No segment follows: the last part's end goes on to its speaker's turn's end."""
        if self._held is not None:
            part, speaker, last_word = self._held
            turn = self._turn_around(speaker, last_word)
            if turn is not None:
                part.end = max(min(turn.end, last_word.end + MAX_WIDEN_SECONDS), part.start)
            self._held = None

    def _widen(self, part: Segment, speaker: int | None, first: Word, last: Word) -> None:
        """Set the edges of the part before ``part`` and of ``part`` to their speakers'
        turns: a turn says when the person was heard, more closely than word times (which
        may run on into a silence or into the next speaker). A part never reaches over one
        of the same speaker, nor past its own words by more than ``MAX_WIDEN_SECONDS``;
        the part before ``part`` may change only until ``part`` is known (a stream holds
        it back until then)."""
        held, self._held = self._held, (part, speaker, last)
        if held is not None:
            before, before_speaker, before_last = held
            turn = self._turn_around(before_speaker, before_last)
            if turn is not None:
                ceiling = part.start if before_speaker == speaker else part.end
                end = min(turn.end, ceiling, before_last.end + MAX_WIDEN_SECONDS)
                before.end = max(end, before.start)
        turn = self._turn_around(speaker, first)
        if turn is not None:
            floor = -1.0
            if held is not None:
                floor = held[0].end if held[1] == speaker else held[0].start
            start = max(turn.start, floor, first.start - MAX_WIDEN_SECONDS)
            part.start = min(start, part.end)

    def _turn_around(self, speaker: int | None, word: Word) -> SpeakerTurn | None:
        """The turn of ``speaker`` that the word was said in (overlaps it most)."""
        if speaker is None:
            return None
        left = bisect.bisect_left(self._starts, word.start - self._longest)
        right = bisect.bisect_left(self._starts, word.end)
        overlapping = [
            (min(turn.end, word.end) - max(turn.start, word.start), turn)
            for turn in self._turns[left:right]
            if turn.speaker == speaker
        ]
        best = max(overlapping, key=lambda pair: pair[0], default=None)
        return best[1] if best is not None and best[0] > 0 else None

    def _speaker_of(self, word: Word) -> int | None:
        """The speaker heard longest during the word; the nearest turn's if none was; the
        previous word's if there are no turns at all."""
        overlap: dict[int, float] = {}
        left = bisect.bisect_left(self._starts, word.start - self._longest)
        right = bisect.bisect_left(self._starts, word.end)
        for turn in self._turns[left:right]:
            shared = min(turn.end, word.end) - max(turn.start, word.start)
            if shared > 0:
                overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
        if overlap:
            self._last = max(overlap, key=lambda speaker: overlap[speaker])
            return self._last
        before = self._latest_before[right]
        after = right if right < len(self._turns) else None
        gaps = {
            index: max(self._turns[index].start - word.end, word.start - self._turns[index].end)
            for index in (before, after)
            if index is not None
        }
        if gaps:
            self._last = self._turns[min(gaps, key=lambda index: gaps[index])].speaker
        return self._last

    def _label(self, speaker: int | None) -> str:
        if speaker is not None and speaker in self._names:
            return self._names[speaker]
        if speaker not in self._labels:
            self._labels[speaker] = _letters(len(self._labels))
        return self._labels[speaker]


def _word_starts(text: str, words: list[str]) -> list[int]:
    """Where each of ``words`` (in order, possibly stripped of punctuation) starts in
    ``text``; a word not found starts where the one before it did."""
    starts, position = [], 0
    for word in words:
        found = text.find(word.strip(), position)
        start = position
        if found >= 0:
            start = found
            position = found + len(word.strip())
            # The space before the word goes with it, as the model's own segments begin.
            while start > 0 and text[start - 1].isspace():
                start -= 1
        starts.append(start)
    return starts


def _letters(index: int) -> str:
    """ "A", "B", ..., "Z", "AA", "AB", ... for 0, 1, ..."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = string.ascii_uppercase[remainder] + letters
    return letters


def _estimated_words(segment: Segment) -> list[Word]:
    """The segment's words with times spread over it in proportion to their length."""
    pieces = segment.text.split()
    total = sum(len(piece) + 1 for piece in pieces)
    span = max(segment.end - segment.start, 0.0)
    words, position = [], 0
    for piece in pieces:
        start = segment.start + span * position / total
        position += len(piece) + 1
        end = segment.start + span * position / total
        words.append(Word(" " + piece, round(start, 3), round(end, 3), 0.0))
    return words
