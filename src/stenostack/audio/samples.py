"""Mono 16-bit PCM samples: the form audio takes from decoding to the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int16Audio = npt.NDArray[np.int16]

# int16 samples span [-32768, 32767]: divided by this they span [-1, 1), as models take them.
PCM16_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class Speech:
    """What a model transcribes: speech at the model's rate, long silences cut out.

    ``breaks`` are the sample positions where a long pause was cut: where segment times are
    wanted, no decoding window or segment may cross one, so that no segment spans the pause
    on the file's timeline.
    """

    samples: Int16Audio
    breaks: Sequence[int] = ()


def to_float32(samples: Int16Audio) -> npt.NDArray[np.float32]:
    """The samples as float32 in [-1, 1)."""
    audio = samples.astype(np.float32)
    audio /= np.float32(PCM16_FULL_SCALE)
    return audio
