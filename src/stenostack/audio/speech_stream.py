"""Speech found while a file is still being decoded, so its first windows can start at once.

:func:`prepare_speech_stream` decodes with PyAV and runs Silero VAD piece by piece, and hands
each speech span on as soon as nothing later can change it. The result is exactly what
:func:`stenostack.audio.vad.find_speech` and :class:`SpeechTimeline` give for the whole file:

- VAD works in the same blocks of ``BLOCK_SECONDS``, and Silero's probabilities are causal
  (each 32 ms row depends on the rows before it through the LSTM state and a 64-sample
  context), so computing a block's rows in pieces with the state carried over is bit-exact,
  as long as each block's last row gets the zeroed tail that faster-whisper's call gives it;
- faster-whisper's state machine is run with its state kept between pieces, and a span is
  final once the next one has been found (its padding depends on the next span's start);
- spans are merged across blocks as :func:`find_speech` merges them.

Memory stays bounded: decoded samples are kept only until the speech spans that need them are
final, so a long file holds its joined speech and a few minutes of audio, never the whole
decoded file beside a joined copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from faster_whisper.vad import VadOptions, get_vad_model

from stenostack.audio.samples import Int16Audio, to_float32
from stenostack.audio.vad import BLOCK_SECONDS, merge_touching
from stenostack.audio.vad_settings import VadSettings

# Silero's units, as faster-whisper calls it: 512-sample rows, each with the 64 samples
# before it as context.
ROW_SAMPLES = 512
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)


class _BlockProbabilities:
    """Silero's speech probability per row of one VAD block, computed piece by piece."""

    def __init__(self) -> None:
        self._session = get_vad_model().session
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def rows(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities of the next ``rows`` (shape ``(n, ROW_SAMPLES)``) of the block."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        contexts = np.concatenate([self._context[None, :], rows[:-1, -CONTEXT_SAMPLES:]])
        batch = np.concatenate([contexts, rows], axis=1)
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = rows[-1, -CONTEXT_SAMPLES:].copy()
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass
class _SpeechStateMachine:
    """faster-whisper's ``get_speech_timestamps`` loop over probabilities, resumable.

    The loop body is faster-whisper 1.2's, with its locals kept between calls; the padding
    pass is in :func:`_padded`.
    """

    options: VadOptions
    sample_rate: int
    speeches: list[dict[str, int]] = field(default_factory=list)
    current: dict[str, int] = field(default_factory=dict)
    index: int = 0
    triggered: bool = False
    temp_end: int = 0
    prev_end: int = 0
    next_start: int = 0

    def feed(self, probs: npt.NDArray[np.float32]) -> None:
        threshold = self.options.threshold
        neg_threshold = self.options.neg_threshold
        if neg_threshold is None:
            neg_threshold = max(threshold - 0.15, 0.01)
        rate = self.sample_rate
        pad = rate * self.options.speech_pad_ms / 1000
        max_speech = rate * self.options.max_speech_duration_s - ROW_SAMPLES - 2 * pad
        min_speech = rate * self.options.min_speech_duration_ms / 1000
        min_silence = rate * self.options.min_silence_duration_ms / 1000
        min_silence_at_max_speech = rate * 98 / 1000
        for prob in probs:  # float32 scalars, compared as faster-whisper compares them
            i = self.index
            self.index += 1
            position = ROW_SAMPLES * i
            if prob >= threshold and self.temp_end:
                self.temp_end = 0
                if self.next_start < self.prev_end:
                    self.next_start = position
            if prob >= threshold and not self.triggered:
                self.triggered = True
                self.current["start"] = position
                continue
            if self.triggered and position - self.current["start"] > max_speech:
                if self.prev_end:
                    self.current["end"] = self.prev_end
                    self.speeches.append(self.current)
                    self.current = {}
                    if self.next_start < self.prev_end:
                        self.triggered = False
                    else:
                        self.current["start"] = self.next_start
                    self.prev_end = self.next_start = self.temp_end = 0
                else:
                    self.current["end"] = position
                    self.speeches.append(self.current)
                    self.current = {}
                    self.prev_end = self.next_start = self.temp_end = 0
                    self.triggered = False
                    continue
            if prob < neg_threshold and self.triggered:
                if not self.temp_end:
                    self.temp_end = position
                if position - self.temp_end > min_silence_at_max_speech:
                    self.prev_end = self.temp_end
                if position - self.temp_end < min_silence:
                    continue
                self.current["end"] = self.temp_end
                if self.current["end"] - self.current["start"] > min_speech:
                    self.speeches.append(self.current)
                self.current = {}
                self.prev_end = self.next_start = self.temp_end = 0
                self.triggered = False
                continue

    def final_spans(self) -> list[tuple[int, int]]:
        """Padded spans that later rows cannot change: all but the last one found."""
        if len(self.speeches) < 2:
            return []
        return _padded(self.speeches, self.options.speech_pad_ms, self.sample_rate, None)[:-1]

    def finish(self, length: int) -> list[tuple[int, int]]:
        """Every padded span of a block of ``length`` samples whose rows are all fed."""
        speeches = list(self.speeches)
        min_speech = self.sample_rate * self.options.min_speech_duration_ms / 1000
        if self.current and length - self.current["start"] > min_speech:
            speeches.append({**self.current, "end": length})
        return _padded(speeches, self.options.speech_pad_ms, self.sample_rate, length)


def _padded(
    raw: list[dict[str, int]], pad_ms: int, sample_rate: int, length: int | None
) -> list[tuple[int, int]]:
    """faster-whisper's padding pass, on copies (``length`` None: the block's end is not
    known yet, so the last span's end is provisional)."""
    speeches = [dict(speech) for speech in raw]
    pad = sample_rate * pad_ms / 1000
    end_limit = float("inf") if length is None else length
    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * pad:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(end_limit, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(end_limit, speech["end"] + pad))
    return [(speech["start"], speech["end"]) for speech in speeches]


class SpeechFinder:
    """Feed decoded samples in order; read the speech spans that are final so far.

    ``spans`` always starts with exactly the spans :func:`find_speech` gives for the whole
    file, and equals them once :meth:`finish` has been called.
    """

    def __init__(self, sample_rate: int, settings: VadSettings) -> None:
        self.sample_rate = sample_rate
        self._options = VadOptions(
            threshold=settings.threshold,
            min_silence_duration_ms=settings.silence_duration_ms,
            speech_pad_ms=settings.prefix_padding_ms,
        )
        self._gap = 2 * settings.prefix_padding_ms * sample_rate // 1000
        self._block = BLOCK_SECONDS * sample_rate
        self._block_start = 0  # file sample where the current VAD block starts
        self._pending = np.zeros(0, dtype=np.int16)  # fed samples not yet in a whole row
        self._fed = 0  # file samples fed so far
        self._probs = _BlockProbabilities()
        self._machine = _SpeechStateMachine(self._options, sample_rate)
        self._closed_blocks: list[tuple[int, int]] = []  # spans of finished blocks
        self.spans: list[tuple[int, int]] = []  # final, merged, on the file's timeline

    def feed(self, samples: Int16Audio) -> None:
        while len(samples):
            room = self._block_start + self._block - self._fed
            taken, samples = samples[:room], samples[room:]
            self._fed += len(taken)
            self._pending = np.concatenate([self._pending, taken])
            whole = len(self._pending) // ROW_SAMPLES * ROW_SAMPLES
            if whole:
                rows = to_float32(self._pending[:whole]).reshape(-1, ROW_SAMPLES)
                self._machine.feed(self._probs.rows(rows))
                self._pending = self._pending[whole:]
            if self._fed == self._block_start + self._block:
                self._close_block()
        self._publish(self._offset(self._machine.final_spans()))

    def finish(self) -> list[tuple[int, int]]:
        """The end of the file: every span, exactly as :func:`find_speech` finds them."""
        if self._fed > self._block_start:
            self._close_block()
        self.spans = merge_touching(self._closed_blocks, self._gap)
        return self.spans

    def _close_block(self) -> None:
        """The block's last row, padded and with its tail zeroed as faster-whisper leaves
        it; then its spans, all final."""
        length = self._fed - self._block_start
        last = np.zeros(ROW_SAMPLES, dtype=np.float32)
        last[: len(self._pending)] = to_float32(self._pending)
        last[-CONTEXT_SAMPLES:] = 0
        self._machine.feed(self._probs.rows(last[None, :]))
        self._closed_blocks += self._offset(self._machine.finish(length))
        self._block_start = self._fed
        self._pending = np.zeros(0, dtype=np.int16)
        self._probs = _BlockProbabilities()
        self._machine = _SpeechStateMachine(self._options, self.sample_rate)
        self._publish([])

    def _offset(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(self._block_start + start, self._block_start + end) for start, end in spans]

    def _publish(self, open_block_spans: list[tuple[int, int]]) -> None:
        # Merging can still join the last span with one found later: all but it are final.
        merged = merge_touching(self._closed_blocks + open_block_spans, self._gap)
        if len(merged) - 1 > len(self.spans):
            self.spans = merged[:-1]
