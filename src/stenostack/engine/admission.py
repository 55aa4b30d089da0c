"""Backpressure: each model's queue is bounded in seconds of audio.

A request is admitted only if its audio fits under the bound together with everything the
model has already admitted and not finished (a file is admitted by its expected length before
it is decoded, then settled to its real length); otherwise it is refused at once with a 429 and
a Retry-After, before any of its work is queued. An engine never accepts work it would
have to drop. A lone request is always admitted (the upload limits bound its size), so a
file longer than the bound can still be served when the model is idle.
"""

from __future__ import annotations

import math
import threading

from stenostack.errors import EngineOverloaded

MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 60
# Until the model has finished some audio, assume it runs at this real-time factor.
ASSUMED_REAL_TIME_FACTOR = 0.1


class AudioQueueBound:
    def __init__(self, model_name: str, max_queued_seconds: float) -> None:
        self.model_name = model_name
        self.max_queued_seconds = max_queued_seconds
        self._lock = threading.Lock()
        self._admitted_seconds = 0.0
        self._admitted_requests = 0
        self._finished_seconds = 0.0

    @property
    def admitted_seconds(self) -> float:
        return self._admitted_seconds

    def admit(self, seconds: float, busy_seconds: float) -> None:
        """Count ``seconds`` of audio in, or raise :class:`EngineOverloaded`.

        ``busy_seconds`` is the model's total time in calls so far: with the audio finished
        so far it gives the real-time factor that turns queued audio into a wait.
        """
        with self._lock:
            fits = self._admitted_seconds + seconds <= self.max_queued_seconds
            if self._admitted_requests == 0 or fits:
                self._admitted_seconds += seconds
                self._admitted_requests += 1
                return
            queued = self._admitted_seconds
        raise self._overloaded(queued, seconds, busy_seconds)

    def settle(self, reserved: float, actual: float, busy_seconds: float) -> None:
        """Replace an admitted request's expected ``reserved`` seconds by its ``actual``
        length, once decoded; raise :class:`EngineOverloaded` if the excess does not fit (the
        caller then releases ``reserved``)."""
        with self._lock:
            extra = actual - reserved
            fits = self._admitted_seconds + extra <= self.max_queued_seconds
            if extra <= 0 or fits or self._admitted_requests == 1:
                self._admitted_seconds += extra
                return
            queued = self._admitted_seconds - reserved
        raise self._overloaded(queued, actual, busy_seconds)

    def _overloaded(self, queued: float, seconds: float, busy_seconds: float) -> EngineOverloaded:
        finished = self._finished_seconds
        rtf = busy_seconds / finished if finished > 0 else ASSUMED_REAL_TIME_FACTOR
        excess = queued + seconds - self.max_queued_seconds
        wait = min(max(math.ceil(excess * rtf), MIN_RETRY_AFTER_S), MAX_RETRY_AFTER_S)
        return EngineOverloaded(
            f"The engine is at capacity for model '{self.model_name}': {queued:.0f} s of "
            f"audio are queued or running, and this request's {seconds:.0f} s would pass the "
            f"limit of {self.max_queued_seconds:.0f} s. Retry after {wait} s.",
            retry_after_s=wait,
        )

    def release(self, seconds: float, *, finished: bool) -> None:
        with self._lock:
            self._admitted_requests -= 1
            # Exactly zero when nothing is left, not a rounding residue of many sums.
            remaining = self._admitted_seconds - seconds
            self._admitted_seconds = remaining if self._admitted_requests else 0.0
            if finished:
                self._finished_seconds += seconds
