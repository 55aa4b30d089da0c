"""Moonshine's pieces: speech cut at pauses into pieces it hears whole, in 10 ms frames.

Moonshine hears a piece at once, with no window of its own (the reference takes up to
64 s); long speech is cut as Whisper's is (:mod:`stenostack.models.pieces`), into pieces of
at most 30 s. On continuous speech, 30 s was the most accurate of the lengths measured,
and the slowest for one file alone (``python -m benchmarks.moonshine_sizing window``,
text only, 2 s buckets, 2 threads as two lanes on a shared machine):

| longest piece | espeak-ng, 3 min continuous: WER, s | real, 57 s joined: WER, s |
|---|---|---|
| 10 s | 4.68 %, 16.4 | 1.89 %, 5.3 |
| 15 s | 5.39 %, 19.4 | 2.83 %, 5.0 |
| 20 s | 3.51 %, 19.2 | 1.89 %, 5.9 |
| 25 s | 3.51 %, 20.0 | 2.83 %, 5.8 |
| 30 s | 2.34 %, 24.9 | 2.83 %, 6.7 |

The real file is the eight real clips of :mod:`.input_sizing` end to end with 0.3 s
between them (106 words: a point is a word).
"""

from __future__ import annotations

from stenostack.models.moonshine.units import FRAME_SAMPLES, FRAMES_PER_SECOND, SAMPLE_RATE
from stenostack.models.pieces import PieceShape

WINDOW_SECONDS = 30
# Continuous speech longer than a window is cut at the quietest moment of this many last
# seconds of it: long enough to hold a pause between sentences in read speech.
CUT_SEARCH_SECONDS = 8

#: Moonshine's pieces, in frames.
MOONSHINE_PIECES = PieceShape(
    window=WINDOW_SECONDS * FRAMES_PER_SECOND,
    cut_search=CUT_SEARCH_SECONDS * FRAMES_PER_SECOND,
    unit=FRAME_SAMPLES,
    sample_rate=SAMPLE_RATE,
)
