"""Speech cut into pieces of at most one window, decoded independently and side by side.

Whisper's own ``transcribe`` walks a file window by window, each window's prompt carrying
the text before it, so no window can start before the last has finished. Batched pipelines
(faster-whisper's ``BatchedInferencePipeline``, WhisperX) instead cut the speech at pauses
into pieces of at most 30 s and decode them all at once without each other's text. So does
this engine: a piece ends at a long pause (a break, where segment times are wanted) or, in
continuous speech, in the longest pause of its last seconds, so that no word is cut; its
windows keep their own text as context. On a 9.5-minute file (``python -m
benchmarks.long_file``, whisper-base, greedy, 2 cores) the engine went from 28.1 s to 14.7 s
(12.3 s with two lanes) and from 9.37 % to 3.86 % WER in English (tiny.en: 15.6 s to 9.2 s,
then 6.8 s; 11.2 % to 7.7 %) and from 30.5 s to 25.6 s and 41.0 % to 34.4 % in Spanish:
conditioning on the whole file's text cost words, as it does for faster-whisper's own
sequential ``transcribe``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stenostack.audio.pauses import longest_pause
from stenostack.audio.samples import Speech
from stenostack.models.base import TranscriptionOptions
from stenostack.models.whisper.units import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    SAMPLE_RATE,
    WINDOW_FRAMES,
)

# Continuous speech longer than a window is cut at the quietest moment of this many last
# seconds of the window: long enough to hold a pause between sentences in read speech.
CUT_SEARCH_FRAMES = 8 * FRAMES_PER_SECOND


def decodes_timestamps(options: TranscriptionOptions, speech_frames: int) -> bool:
    """Whether Whisper decodes timestamp tokens for this request (``speech_frames``: its
    speech, as far as the first window and one frame more).

    A caller that wants segment times gets them. For text only, a long file is decoded
    without them, as batched pipelines do: on a 9.5-minute file (whisper-base, greedy) that
    took 16.8 s instead of 21.1 s with 3.86 % WER instead of 4.78 % in English, and 36.1 %
    instead of 38.0 % in Spanish (espeak-ng, ``python -m benchmarks.long_file``). Speech
    within one window keeps them: on 44 short English clips, text without timestamps had
    8.0 % WER against 7.2 % (whisper-base) and 8.2 % against 8.0 % (tiny.en), where the
    engine with timestamps matches faster-whisper (``benchmarks.accuracy_vs_faster_whisper``).
    """
    return options.segment_timestamps or speech_frames <= WINDOW_FRAMES


@dataclass(frozen=True)
class Piece:
    """Mel frames ``[start, end)`` of the speech, and the speech that holds them."""

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
        keep_breaks: bool = True,
    ) -> None:
        self._speech_until = speech_until
        self._is_final = is_final
        self._keep_breaks = keep_breaks
        self._start = 0

    def next(self, wait: bool) -> Piece | None:
        """The next piece; None when the speech is used up or, unless ``wait``, when the
        next piece's audio is still being decoded."""
        start = self._start
        # Whatever the piece could reach is final: one frame past a whole window.
        needed = (start + WINDOW_FRAMES + 1) * HOP_LENGTH
        if not wait and not self._is_final(needed):
            return None
        speech = self._speech_until(needed)
        total_frames = len(speech.samples) // HOP_LENGTH  # as faster-whisper counts them
        if start >= total_frames:
            return None
        breaks = speech.breaks if self._keep_breaks else ()
        break_frames = sorted(sample // HOP_LENGTH for sample in breaks)
        end = next((b for b in break_frames if b > start), total_frames)
        if end - start > WINDOW_FRAMES:
            search_from = (start + WINDOW_FRAMES - CUT_SEARCH_FRAMES) * HOP_LENGTH
            search_to = (start + WINDOW_FRAMES) * HOP_LENGTH
            cut = longest_pause(speech.samples, search_from, search_to, SAMPLE_RATE)
            end = min(round(cut / HOP_LENGTH), start + WINDOW_FRAMES)
        self._start = end
        return Piece(start, end, speech)
