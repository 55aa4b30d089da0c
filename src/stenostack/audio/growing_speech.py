"""The joined speech of a file that is still being decoded, readable as far as it is final.

A decode thread runs :class:`SpeechPreparation`, which feeds :class:`GrowingSpeech` one
final speech span at a time; a model reads it through :meth:`GrowingSpeech.ready`, which
waits only until the samples it asks for are final. What it finally holds is exactly the
``Speech`` and ``SpeechTimeline`` that the whole-file path (``find_speech`` on the decoded
file, then ``SpeechTimeline.join``) makes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np

from stenostack.audio.samples import Int16Audio, Speech
from stenostack.audio.speech_stream import SpeechFinder
from stenostack.audio.timeline import SpeechTimeline
from stenostack.audio.vad_settings import VadSettings

# VAD is fed this much decoded audio at a time: small enough that the first windows are found
# at once, large enough that Silero's per-call overhead stays small.
FEED_SECONDS = 2.0


class GrowingSpeech:
    """Speech (long silences cut out) that grows at its end; thread-safe.

    ``min_pause_seconds``: a cut at least this long is a break (see :class:`Speech`).
    ``expected_samples`` sizes the buffer once (it grows if the file is longer), so that a
    reader's view is a slice of it, never a copy.
    """

    def __init__(self, sample_rate: int, min_pause_seconds: float, expected_samples: int) -> None:
        self.sample_rate = sample_rate
        self._min_gap = min_pause_seconds * sample_rate
        self._cond = threading.Condition()  # re-entrant: is_ready runs under wait_for
        self._buffer = np.zeros(max(expected_samples, 0), dtype=np.int16)
        self._length = 0
        self._spans: list[tuple[int, int]] = []
        self._breaks: list[int] = []
        self._duration: float | None = None  # of the file, once decoded to its end
        self._error: BaseException | None = None
        self._watchers: list[Callable[[], None]] = []

    # -- the decoding side ---------------------------------------------------------------

    def add(self, span: tuple[int, int], samples: Int16Audio) -> None:
        """The next speech span (file samples ``[start, end)``) and its samples."""
        with self._cond:
            end = self._length + len(samples)
            if end > len(self._buffer):
                # Views handed out keep the old buffer: what they show does not change.
                grown = np.zeros(max(end, len(self._buffer) * 5 // 4), dtype=np.int16)
                grown[: self._length] = self._buffer[: self._length]
                self._buffer = grown
            self._buffer[self._length : end] = samples
            if self._spans and span[0] - self._spans[-1][1] >= self._min_gap:
                self._breaks.append(self._length)
            self._spans.append(span)
            self._length = end
            self._changed()

    def finish(self, duration: float) -> None:
        with self._cond:
            self._duration = duration
            self._changed()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            if self._duration is not None:
                return  # complete: its readers have all they need
            self._error = error
            self._changed()

    def _changed(self) -> None:
        """Called with the lock held."""
        self._cond.notify_all()
        for watcher in self._watchers:
            watcher()

    # -- the reading side ----------------------------------------------------------------

    def watch(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call ``watcher`` (on the decoding thread; it must not block) at every change, until
        the returned function is called: how an event loop waits without a thread."""
        with self._cond:
            self._watchers.append(watcher)

        def unwatch() -> None:
            with self._cond:
                self._watchers.remove(watcher)

        return unwatch

    def is_ready(self, end: int) -> bool:
        """Whether :meth:`ready` would return (or raise) at once."""
        with self._cond:
            return self._length >= end or self._duration is not None or self._error is not None

    def ready(self, end: int, timeout: float | None = None) -> Speech:
        """The speech so far, once its first ``end`` samples are final or it is complete
        (then all of it). A view, not a copy.

        Raises ``TimeoutError`` after ``timeout`` s, or the decoding error if decoding failed.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self.is_ready(end), timeout):
                raise TimeoutError(f"speech up to sample {end} is not ready")
            if self._error is not None:
                raise self._error
            return Speech(self._buffer[: self._length], tuple(self._breaks))

    @property
    def complete(self) -> bool:
        return self._duration is not None

    @property
    def length(self) -> int:
        """Joined samples final so far."""
        return self._length

    def timeline(self) -> SpeechTimeline:
        """Where the speech final so far lies in the file."""
        with self._cond:
            return SpeechTimeline(list(self._spans), self.sample_rate)

    def wait_complete(self, timeout: float | None = None) -> tuple[float, Speech, SpeechTimeline]:
        """The file's duration, its whole speech and timeline, once decoding has ended."""
        speech = self.ready(np.iinfo(np.int64).max, timeout)
        with self._cond:
            assert self._duration is not None
            return self._duration, speech, self.timeline()


class PreparationStopped(Exception):
    """Decoding was stopped because its request went away."""


class SpeechPreparation:
    """Decoded pieces through VAD into a :class:`GrowingSpeech` (blocking: run :meth:`run`
    on a decode thread). Decoded samples are dropped once the spans that need them are final,
    so the whole decoded file is never held."""

    def __init__(
        self,
        pieces: Iterator[Int16Audio],
        sample_rate: int,
        settings: VadSettings,
        speech: GrowingSpeech,
    ) -> None:
        self.speech = speech
        self._pieces = pieces
        self._rate = sample_rate
        self._finder = SpeechFinder(sample_rate, settings)
        self._feed = int(FEED_SECONDS * sample_rate)
        self._kept = np.zeros(0, dtype=np.int16)  # file samples from ``_kept_from`` on
        self._kept_from = 0
        self._added = 0  # spans handed on
        self._waiting: list[Int16Audio] = []
        self._waiting_samples = 0
        self.decoded = 0  # samples
        self._stopped = False

    def run(self, budget_seconds: float | None = None) -> bool:
        """Go on until the file ends (True) or more than ``budget_seconds`` of it are
        decoded (False: call again, e.g. on a long file's lane). A failure is also handed to
        the speech's readers."""
        budget = None if budget_seconds is None else budget_seconds * self._rate
        try:
            for piece in self._pieces:
                if self._stopped:
                    raise PreparationStopped("the request was cancelled")
                self._waiting.append(piece)
                self._waiting_samples += len(piece)
                self.decoded += len(piece)
                if self._waiting_samples >= self._feed:
                    self._hand_on(last=False)
                if budget is not None and self.decoded > budget:
                    return False
            self._hand_on(last=True)
            self.speech.finish(self.decoded / self._rate)
            return True
        except BaseException as exc:
            self.speech.fail(exc)
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()  # the decoder's file and buffers go now, not when collected
            raise

    def stop(self) -> None:
        """Stop decoding at the next piece (the request is gone), and wake any reader."""
        self._stopped = True
        self.speech.fail(PreparationStopped("the request was cancelled"))

    def _hand_on(self, *, last: bool) -> None:
        samples = np.concatenate(self._waiting) if self._waiting else self._kept[:0]
        self._waiting, self._waiting_samples = [], 0
        self._kept = np.concatenate([self._kept, samples])
        if len(samples):
            self._finder.feed(samples)
        spans = self._finder.finish() if last else self._finder.spans
        for start, end in spans[self._added :]:
            self.speech.add(
                (start, end), self._kept[start - self._kept_from : end - self._kept_from]
            )
        if len(spans) > self._added:
            self._added = len(spans)
            drop = spans[-1][1] - self._kept_from
            self._kept, self._kept_from = self._kept[drop:], spans[-1][1]
