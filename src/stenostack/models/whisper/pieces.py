"""Whisper's pieces: speech cut into pieces of at most one window, in mel frames.

Whisper's own ``transcribe`` walks a file window by window, each window's prompt carrying
the text before it, so no window can start before the last has finished. Batched pipelines
(faster-whisper's ``BatchedInferencePipeline``, WhisperX) instead cut the speech at pauses
into pieces of at most 30 s and decode them all at once without each other's text. So does
this engine (:mod:`stenostack.models.pieces`); each piece's windows keep their own text as
context. On a 9.5-minute file (``python -m
benchmarks.long_file``, whisper-base, greedy, 2 cores) the engine went from 28.1 s to 14.7 s
(12.3 s with two lanes) and from 9.37 % to 3.86 % WER in English (tiny.en: 15.6 s to 9.2 s,
then 6.8 s; 11.2 % to 7.7 %) and from 30.5 s to 25.6 s and 41.0 % to 34.4 % in Spanish:
conditioning on the whole file's text cost words, as it does for faster-whisper's own
sequential ``transcribe``.
"""

from __future__ import annotations

from stenostack.models.base import TranscriptionOptions
from stenostack.models.pieces import PieceShape
from stenostack.models.whisper.units import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    SAMPLE_RATE,
    WINDOW_FRAMES,
)

# Continuous speech longer than a window is cut at the quietest moment of this many last
# seconds of the window: long enough to hold a pause between sentences in read speech.
CUT_SEARCH_FRAMES = 8 * FRAMES_PER_SECOND

#: Whisper's pieces, in mel frames.
WHISPER_PIECES = PieceShape(
    window=WINDOW_FRAMES, cut_search=CUT_SEARCH_FRAMES, unit=HOP_LENGTH, sample_rate=SAMPLE_RATE
)


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
