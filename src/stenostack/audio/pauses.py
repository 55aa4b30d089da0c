"""Where to cut speech that must be split: in its longest pause, not inside a word."""

from __future__ import annotations

import numpy as np

from stenostack.audio.samples import Int16Audio

# Energy is compared in steps of this much audio.
STEP_SECONDS = 0.01
# A step at most this many times as loud as the quietest step of the stretch is pause:
# within 6 dB of the floor, where background noise varies, far below any voiced sound.
PAUSE_ENERGY_RATIO = 4.0


def longest_pause(samples: Int16Audio, start: int, end: int, sample_rate: int) -> int:
    """The sample in ``[start, end)`` at the middle of its longest pause (the latest, where
    several are as long): a pause between sentences rather than between two words."""
    step = max(int(STEP_SECONDS * sample_rate), 1)
    steps = (end - start) // step
    if steps < 1:
        return (start + end) // 2
    stretch = samples[start : start + steps * step].astype(np.float64).reshape(steps, step)
    energy = np.square(stretch).sum(axis=1)
    quiet = energy <= PAUSE_ENERGY_RATIO * max(float(energy.min()), 1.0)
    # Runs of quiet steps: where quiet begins and ends.
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - begins
    longest = len(lengths) - 1 - int(np.argmax(lengths[::-1]))
    middle = (begins[longest] + ends[longest]) * step // 2
    return start + int(middle)
