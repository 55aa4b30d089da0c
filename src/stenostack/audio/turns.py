"""Where a speaker's turns start and stop in live audio: OpenAI's ``server_vad``.

Silero VAD (the ONNX model faster-whisper ships, the one the engine uses for files) runs
frame by frame, carrying its recurrent state and context from one appended piece to the
next, so streaming gives the same probabilities as one pass over the whole audio. A turn
starts at the first frame at or above ``threshold`` (reaching back ``prefix_padding_ms``)
and stops once the probability has stayed below it for ``silence_duration_ms``, with the
same hysteresis as Silero's own segmenter. A turn that runs past ``max_turn_seconds`` is
cut in the longest pause of its last few seconds, so a speaker who never stops long enough
to end a turn still gets text back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from faster_whisper.vad import get_vad_model

from stenostack.audio.samples import Int16Audio, to_float32
from stenostack.audio.vad_settings import VadSettings

# Silero VAD's rate: it judges a stream of 16 kHz samples, so turn positions count those.
VAD_SAMPLE_RATE = 16_000
FRAME_SAMPLES = 512  # 32 ms: the frame Silero VAD is trained on at 16 kHz
CONTEXT_SAMPLES = 64
# Frames judged in one model call: the ONNX runtime keeps (and never returns) scratch memory
# sized for its largest call, ~10 kB per frame, so a long append is judged in batches.
BATCH_FRAMES = 256
# Below threshold minus this, a frame counts as silence (Silero's hysteresis).
HYSTERESIS = 0.15
# A turn that reaches the length limit is cut in the longest pause of its last seconds.
CUT_SEARCH_SECONDS = 8.0


class StreamingVad:
    """Speech probability for each 32 ms frame of a stream of 16 kHz samples."""

    def __init__(self, sample_rate: int = VAD_SAMPLE_RATE) -> None:
        if sample_rate != VAD_SAMPLE_RATE:
            raise ValueError(f"server VAD judges {VAD_SAMPLE_RATE} Hz audio, not {sample_rate} Hz")
        self._session = get_vad_model().session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def probabilities(self, samples: Int16Audio) -> npt.NDArray[np.float32]:
        """One probability per frame completed by ``samples`` (a remainder waits)."""
        step = BATCH_FRAMES * FRAME_SAMPLES
        batches = [
            self._judge(samples[start : start + step]) for start in range(0, len(samples), step)
        ]
        return np.concatenate(batches) if batches else np.zeros(0, dtype=np.float32)

    def _judge(self, samples: Int16Audio) -> npt.NDArray[np.float32]:
        audio = np.concatenate([self._pending, to_float32(samples)])
        count = len(audio) // FRAME_SAMPLES
        self._pending = audio[count * FRAME_SAMPLES :]
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        frames = audio[: count * FRAME_SAMPLES].reshape(count, FRAME_SAMPLES)
        contexts = np.vstack([self._context, frames[:-1, -CONTEXT_SAMPLES:]])
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        probs, self._h, self._c = self._session.run(
            None, {"input": np.hstack([contexts, frames]), "h": self._h, "c": self._c}
        )
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class TurnEvent:
    kind: Literal["started", "stopped"]
    position: int  # absolute sample position: a turn's first sample, or the one after its last


class TurnDetector:
    """Turns from frame probabilities, at absolute sample positions of the stream."""

    def __init__(self, settings: VadSettings, max_turn_seconds: float, start: int = 0) -> None:
        self.settings = settings
        self.position = start  # end of the audio judged so far
        self.turn_start: int | None = None
        self._floor = start  # a new turn may not reach back before this (the last turn's end)
        self._silent_since: int | None = None
        self._max_turn = int(max_turn_seconds * VAD_SAMPLE_RATE)
        self._recent: deque[tuple[int, float]] = deque(
            maxlen=int(CUT_SEARCH_SECONDS * VAD_SAMPLE_RATE / FRAME_SAMPLES)
        )

    @property
    def speaking(self) -> bool:
        return self.turn_start is not None

    def feed(self, probabilities: npt.NDArray[np.float32]) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        threshold = self.settings.threshold
        quiet = max(threshold - HYSTERESIS, 0.01)
        prefix = self.settings.prefix_padding_ms * VAD_SAMPLE_RATE // 1000
        silence = self.settings.silence_duration_ms * VAD_SAMPLE_RATE // 1000
        for probability in probabilities.tolist():
            frame_start, self.position = self.position, self.position + FRAME_SAMPLES
            self._recent.append((frame_start, probability))
            if self.turn_start is None:
                if probability >= threshold:
                    self._start(max(frame_start - prefix, self._floor), events)
                continue
            if probability >= threshold:
                self._silent_since = None
            elif probability < quiet and self._silent_since is None:
                self._silent_since = frame_start
            if self._silent_since is not None and self.position - self._silent_since >= silence:
                self._stop(self.position, events)
            elif self.position - self.turn_start >= self._max_turn:
                self._cut(quiet, events)
        return events

    def reset(self) -> None:
        """Forget the turn in progress (the buffer was committed or cleared)."""
        self.turn_start = None
        self._silent_since = None
        self._floor = self.position

    def _start(self, position: int, events: list[TurnEvent]) -> None:
        self.turn_start = position
        self._silent_since = None
        events.append(TurnEvent("started", position))

    def _stop(self, position: int, events: list[TurnEvent]) -> None:
        self.turn_start = None
        self._silent_since = None
        self._floor = position
        events.append(TurnEvent("stopped", position))

    def _cut(self, quiet: float, events: list[TurnEvent]) -> None:
        """End an overlong turn in the middle of its longest recent pause (or at its
        quietest frame); the speech after the cut, if any, opens the next turn."""
        assert self.turn_start is not None
        frames = [(start, p) for start, p in self._recent if start > self.turn_start]
        best: tuple[int, int] = (0, 0)  # (length, middle) of the longest run of quiet frames
        run: list[int] = []
        for start, probability in [*frames, (self.position, 1.0)]:
            if probability < quiet:
                run.append(start)
                continue
            if run and len(run) >= best[0]:
                best = (len(run), run[len(run) // 2])
            run = []
        if best[0]:
            cut = best[1]
        else:
            cut = (
                min(frames, key=lambda frame: frame[1])[0] + FRAME_SAMPLES
                if frames
                else self.position
            )
        self._stop(cut, events)
        if any(p >= self.settings.threshold for start, p in frames if start >= cut):
            self._start(cut, events)
