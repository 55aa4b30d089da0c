"""Speech cut into pieces of at most one window, to be decoded independently, side by side.

Any family whose model hears a bounded stretch at a time cuts long speech the same way:
a piece ends at a long pause (a break, where segment times are wanted) or, in continuous
speech, in the longest pause of the last seconds it may reach, so that no word is cut.
Positions are counted in the family's own unit (Whisper's mel frames, or plain samples),
``unit`` samples each, so that a family's pieces start and end where its model can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stenostack.audio.pauses import longest_pause
from stenostack.audio.samples import Speech


@dataclass(frozen=True)
class PieceShape:
    """How long a piece may be and where it may be cut, in units of ``unit`` samples."""

    window: int  # the most one piece may hold
    cut_search: int  # continuous speech is cut in the longest pause of this many last units
    unit: int  # samples per unit
    sample_rate: int


@dataclass(frozen=True)
class Piece:
    """Units ``[start, end)`` of the speech, and the speech that holds them."""

    start: int
    end: int
    speech: Speech


class PiecePlan:
    """Cuts speech into pieces as it becomes final.

    ``speech_until(end)`` is the speech with at least its first ``end`` samples final (all
    of it once complete); ``is_final(end)`` says whether that call would return at once.
    With ``keep_breaks``, a piece ends at each break (so that no timed segment spans a long
    pause); without, pieces fill their window across breaks, as batched pipelines fill
    theirs with the speech of several stretches.
    """

    def __init__(
        self,
        speech_until: Callable[[int], Speech],
        is_final: Callable[[int], bool],
        shape: PieceShape,
        keep_breaks: bool = True,
    ) -> None:
        self._speech_until = speech_until
        self._is_final = is_final
        self._shape = shape
        self._keep_breaks = keep_breaks
        self._start = 0

    def next(self, wait: bool) -> Piece | None:
        """The next piece; None when the speech is used up or, unless ``wait``, when the
        next piece's audio is still being decoded."""
        shape, start = self._shape, self._start
        # Whatever the piece could reach is final: one unit past a whole window.
        needed = (start + shape.window + 1) * shape.unit
        if not wait and not self._is_final(needed):
            return None
        speech = self._speech_until(needed)
        total = len(speech.samples) // shape.unit
        if start >= total:
            return None
        breaks = speech.breaks if self._keep_breaks else ()
        break_units = sorted(sample // shape.unit for sample in breaks)
        end = next((b for b in break_units if b > start), total)
        if end - start > shape.window:
            search_from = (start + shape.window - shape.cut_search) * shape.unit
            search_to = (start + shape.window) * shape.unit
            cut = longest_pause(speech.samples, search_from, search_to, shape.sample_rate)
            end = min(round(cut / shape.unit), start + shape.window)
        self._start = end
        return Piece(start, end, speech)
