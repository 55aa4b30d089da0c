"""Moonshine's units of time, named once.

Moonshine hears raw 16 kHz samples: no mel frames. Its encoder's three convolutions have
strides 64, 3 and 2, so an encoder position covers 384 samples (24 ms), about 41.7 a
second. Pieces are cut, and ``Segment.seek`` is counted, in frames of 10 ms (160 samples),
the unit Whisper's seek uses, so that a seek means the same whichever family made it.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000

FRAME_SAMPLES = 160  # samples per frame: the unit of pieces and of seek
FRAMES_PER_SECOND = SAMPLE_RATE // FRAME_SAMPLES

SAMPLES_PER_POSITION = 64 * 3 * 2  # the encoder's strides
POSITIONS_PER_SECOND = SAMPLE_RATE / SAMPLES_PER_POSITION


def encoder_positions(samples: int) -> int:
    """How many positions the encoder makes of ``samples`` samples: its output length,
    ``floor(floor(floor(n/64 - 127/64)/3)/2) - 1`` (kernels of 127, 7 and 3 samples or
    positions, strides 64, 3 and 2)."""
    return max((samples - 127) // 64 // 3 // 2 - 1, 0)
