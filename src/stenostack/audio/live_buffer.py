"""The input audio buffer of a live session, addressed by absolute sample positions.

Position 0 is the first sample the session received; positions keep counting after audio
is taken or dropped, so turn boundaries found by voice activity detection can be mapped
straight onto the buffer.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from stenostack.audio.samples import Int16Audio


class LiveBuffer:
    def __init__(self) -> None:
        self._chunks: deque[Int16Audio] = deque()
        self.start = 0  # position of the oldest sample still held
        self.end = 0  # position after the newest sample

    @property
    def held(self) -> int:
        return self.end - self.start

    def append(self, samples: Int16Audio) -> None:
        if len(samples):
            self._chunks.append(samples)
            self.end += len(samples)

    def take(self, start: int, stop: int) -> Int16Audio:
        """Samples in ``[start, stop)`` (clipped to what is held); everything before
        ``stop`` is dropped."""
        start, stop = max(start, self.start), min(stop, self.end)
        if stop <= start:
            self.drop_before(stop)
            return np.zeros(0, dtype=np.int16)
        self.drop_before(start)
        joined = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        taken = joined[: stop - start].copy()
        self._chunks = deque([joined[stop - start :]]) if stop < self.end else deque()
        self.start = stop
        return taken

    def copy_held(self) -> Int16Audio:
        """A copy of every sample held, which is left held (an interim pass reads the turn
        so far without taking it)."""
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)

    def drop_before(self, position: int) -> None:
        """Forget every sample before ``position``."""
        position = min(max(position, self.start), self.end)
        while self._chunks and self.start + len(self._chunks[0]) <= position:
            self.start += len(self._chunks.popleft())
        if self._chunks and self.start < position:
            self._chunks[0] = self._chunks[0][position - self.start :]
            self.start = position

    def clear(self) -> None:
        self.drop_before(self.end)
