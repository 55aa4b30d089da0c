"""Voice activity detection with Silero VAD (the ONNX model faster-whisper ships)."""

from __future__ import annotations

from faster_whisper.vad import VadOptions, get_speech_timestamps

from stenostack.audio.samples import Int16Audio, to_float32
from stenostack.audio.vad_settings import VadSettings

# Silero runs over the audio in blocks so that its float copy stays small for long files.
BLOCK_SECONDS = 300


def find_speech(
    audio: Int16Audio, sample_rate: int, settings: VadSettings
) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` that hold speech, padded and in order.

    In faster-whisper's terms, ``prefix_padding_ms`` is ``speech_pad_ms`` (it pads both
    sides) and ``silence_duration_ms`` is ``min_silence_duration_ms``.
    """
    options = VadOptions(
        threshold=settings.threshold,
        min_silence_duration_ms=settings.silence_duration_ms,
        speech_pad_ms=settings.prefix_padding_ms,
    )
    block = BLOCK_SECONDS * sample_rate
    spans: list[tuple[int, int]] = []
    for offset in range(0, len(audio), block):
        waveform = to_float32(audio[offset : offset + block])
        for chunk in get_speech_timestamps(waveform, options, sampling_rate=sample_rate):
            spans.append((offset + int(chunk["start"]), offset + int(chunk["end"])))
    return merge_touching(spans, gap=2 * settings.prefix_padding_ms * sample_rate // 1000)


def merge_touching(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Join spans whose padding meets, as happens where speech crosses a block boundary."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
