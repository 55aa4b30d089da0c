"""Voice activity detection with Silero VAD (the ONNX model faster-whisper ships)."""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from stenostack.models.base import Int16Audio, VadSettings

# Silero runs over the audio in blocks so that its float copy stays small for long files.
BLOCK_SECONDS = 300


def find_speech(
    audio: Int16Audio, sample_rate: int, settings: VadSettings
) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` that hold speech, padded and in order."""
    options = VadOptions(
        threshold=settings.threshold,
        min_silence_duration_ms=settings.min_silence_ms,
        speech_pad_ms=settings.speech_pad_ms,
    )
    block = BLOCK_SECONDS * sample_rate
    spans: list[tuple[int, int]] = []
    for offset in range(0, len(audio), block):
        waveform = audio[offset : offset + block].astype(np.float32) / 32768.0
        for chunk in get_speech_timestamps(waveform, options, sampling_rate=sample_rate):
            spans.append((offset + int(chunk["start"]), offset + int(chunk["end"])))
    return _merge_touching(spans, gap=2 * settings.speech_pad_ms * sample_rate // 1000)


def _merge_touching(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Join spans whose padding meets, as happens where speech crosses a block boundary."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
