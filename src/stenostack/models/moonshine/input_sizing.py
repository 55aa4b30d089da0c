"""How long an encoder input is: a piece's audio padded with zeros to a bucket boundary.

Neither Moonshine graph takes an attention mask, so rows share an encoder or decoder call
only at one input length: padded to buckets, pieces of different lengths share calls. The
zeros can make the decoder end a piece before its first word (of 44 espeak-ng clips, 2
at 0.25 and 0.5 s buckets, 3 at 1 s, 5 at 2 s; none at their exact length). Such a piece
is decoded again without that choice (``holds_words`` in :mod:`.decoding`), and with that
retry padding costs no words on human speech and gains a few on espeak-ng.

Measured with ``python -m benchmarks.moonshine_sizing buckets --real-dir DIR`` (moonshine-
base, greedy, 2 threads as two lanes, on a 2-core machine shared with other work, so times
are rough; those of the last three rows are from one later run):

| buckets | real WER (8 clips) | espeak-ng WER (44 clips) | 44 clips at once | 3 min read |
|---|---|---|---|---|
| exact | 1.89 % | 6.94 % | 17.1 s | 2.34 %, 25.3 s |
| 0.25 s | 1.89 % | 6.57 % | 11.5 s | 2.34 %, 25.3 s |
| 0.5 s | 1.89 % | 6.00 % | 9.6 s | 2.34 %, 27.8 s |
| 4 s | 2.83 % | 5.07 % | 7.8 s | 2.34 %, 29.2 s |
| 1 s | 1.89 % | 5.82 % | 7.6 s | 2.34 %, 27.1 s |
| 2 s | 2.83 % | 5.44 % | 6.9 s | 2.34 %, 30.2 s |
| 1 s to 4 s, 2 s to 16 s, then 4 s | 1.89 % | 5.44 % | 6.7 s | 2.34 %, 26.8 s |

Real: Beckett's line (moonshine-cpp's test clip), JFK's "ask not" (whisper.cpp's sample),
five LibriVox sentences (pocketsphinx 5.1.1's test data) and the router's espeak-ng
health-check "Hello." (0.9 s), the one word that 2 and 4 s buckets lose: padded to 2 s it
reads as one token, too few to keep (see :mod:`.decoding`). The human recordings read the
same under every rule. espeak-ng: ``benchmarks.workloads.short_clips`` (2-10 s, seed 1),
and a continuous 3-minute read (``benchmarks.moonshine_sizing.continuous``) in 30 s
pieces. Buckets that grow with the piece keep the padding of a short piece short and give
long pieces few shapes to share calls in.
"""

from __future__ import annotations

import math

from stenostack.models.moonshine.units import SAMPLE_RATE

#: Bucket boundaries: (up to this many samples, every this many samples).
Buckets = tuple[tuple[float, int], ...]

# Every second up to 4 s, every 2 s up to 16 s, every 4 s beyond.
BUCKETS: Buckets = ((4 * SAMPLE_RATE, SAMPLE_RATE), (16 * SAMPLE_RATE, 2 * SAMPLE_RATE),
                    (math.inf, 4 * SAMPLE_RATE))  # fmt: skip


def uniform(step: int) -> Buckets:
    """Boundaries every ``step`` samples (1: every piece at its exact length)."""
    return ((math.inf, step),)


def input_samples(samples: int, buckets: Buckets = BUCKETS) -> int:
    """The encoder input for a piece of ``samples`` samples: the next bucket boundary."""
    for up_to, step in buckets:
        if samples <= up_to:
            return max(math.ceil(samples / step), 1) * step
    raise ValueError(f"no bucket holds {samples} samples")
