"""pyannote's segmentation-3.0 on ONNX Runtime: who of up to three voices speaks in each
frame of a 10 s window.

The model answers, per frame, a probability for each of seven *powerset* classes: nobody,
one of three local speakers, or one of the three pairs. Local speakers are numbered per
window: speaker 1 of one window need not be speaker 1 of the next; the diarizer links
them across windows by voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from stenostack.audio.samples import Int16Audio, to_float32

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 10 * SAMPLE_RATE
# The model's frames: one every 270 samples (16.875 ms), each seeing 721 samples (its
# convolutions' receptive field), so frame j is centred at j * 270 + 360 samples.
FRAME_STEP_SAMPLES = 270
FRAME_CENTRE_SAMPLES = 360
FRAMES_PER_WINDOW = 589
LOCAL_SPEAKERS = 3
# Which local speakers each powerset class holds: nobody, 1, 2, 3, 1+2, 1+3, 2+3.
POWERSET = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=bool
)

#: Per window, per frame, per local speaker: whether they speak. [windows, frames, 3]
LocalActivity = npt.NDArray[np.bool_]


def frame_seconds(frames: float) -> float:
    return frames * FRAME_STEP_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows start: every ``step_frames`` model frames, so that the frames of
    all windows fall on one grid, until one reaches the end of the audio."""

    samples: int
    step_frames: int

    @property
    def step_samples(self) -> int:
        return self.step_frames * FRAME_STEP_SAMPLES

    @property
    def count(self) -> int:
        beyond_first = max(self.samples - WINDOW_SAMPLES, 0)
        return 1 + -(-beyond_first // self.step_samples)

    @property
    def total_frames(self) -> int:
        """Grid frames up to the end of the audio."""
        return max(-(-(self.samples - FRAME_CENTRE_SAMPLES) // FRAME_STEP_SAMPLES), 1)

    def start(self, window: int) -> int:
        return window * self.step_samples

    def cut(self, samples: Int16Audio, window: int) -> npt.NDArray[np.float32]:
        """Window ``window`` of ``samples`` as float32, zero-padded past their end (only a
        window at a time is converted: a long recording is never copied whole)."""
        start = self.start(window)
        piece = to_float32(samples[start : start + WINDOW_SAMPLES])
        if len(piece) < WINDOW_SAMPLES:
            piece = np.pad(piece, (0, WINDOW_SAMPLES - len(piece)))
        return piece


class SpeakerSegmentation:
    """The segmentation graph; ``run`` may be called from one thread at a time."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, windows: npt.NDArray[np.float32]) -> LocalActivity:
        """Local speakers' activity in a batch of windows, [windows, WINDOW_SAMPLES].

        Each frame takes its most likely powerset class (the decoding segmentation-3.0 was
        trained for), so overlap is two local speakers active at once.
        """
        (log_probs,) = self._session.run(None, {"input": windows[:, None, :]})
        activity: LocalActivity = POWERSET[np.argmax(log_probs, axis=-1)]
        return activity
