"""Speech cut out of a file and laid end to end, and the map from that back to the file."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from stenostack.audio.samples import Int16Audio

SEAM_SNAP_SECONDS = 0.02


@dataclass
class SpeechTimeline:
    """Maps times on the joined speech audio to times on the original file."""

    spans: list[tuple[int, int]]  # sample ranges of the original file, in order
    sample_rate: int
    _joined_starts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        starts, position = [], 0
        for start, end in self.spans:
            starts.append(position)
            position += end - start
        self._joined_starts = starts

    def join(self, audio: Int16Audio) -> Int16Audio:
        if not self.spans:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([audio[start:end] for start, end in self.spans])

    def seams_after_pauses(self, min_pause_seconds: float) -> list[int]:
        """Joined-audio sample positions where at least ``min_pause_seconds`` were cut out."""
        min_gap = min_pause_seconds * self.sample_rate
        return [
            self._joined_starts[i]
            for i in range(1, len(self.spans))
            if self.spans[i][0] - self.spans[i - 1][1] >= min_gap
        ]

    def to_file_time(self, seconds: float, *, is_end: bool = False) -> float:
        """The file time of a joined-audio time.

        Model times are quantised (Whisper: 20 ms), so a start just before a seam belongs to
        the span after it and an end just after a seam to the span before it.
        """
        if not self.spans:
            return seconds
        snap = SEAM_SNAP_SECONDS * self.sample_rate
        sample = seconds * self.sample_rate
        probe = sample - snap if is_end else sample + snap
        index = max(bisect.bisect_right(self._joined_starts, probe) - 1, 0)
        span_start, span_end = self.spans[index]
        offset = min(max(sample - self._joined_starts[index], 0), span_end - span_start)
        return round((span_start + offset) / self.sample_rate, 3)
