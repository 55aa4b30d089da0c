"""faster-whisper as the engine is measured against: the engine's decoding settings (the
temperature ladder with 5 samples per step, conditioning on previous text) and its file VAD,
at a given beam size. Shared by the parity test and the benchmarks."""

from __future__ import annotations

import io

from faster_whisper import WhisperModel
from faster_whisper.vad import VadOptions

from stenostack.audio.vad_settings import FILE_VAD
from stenostack.models.languages import NO_SPACE_LANGUAGES

VAD = VadOptions(
    threshold=FILE_VAD.threshold,
    min_silence_duration_ms=FILE_VAD.silence_duration_ms,
    speech_pad_ms=FILE_VAD.prefix_padding_ms,
)


def faster_whisper_text(
    model: WhisperModel, audio: bytes, language: str | None, *, beam_size: int = 1
) -> str:
    """The transcript of ``audio`` (a file's bytes); segments joined as the language writes."""
    segments, info = model.transcribe(
        io.BytesIO(audio),
        language=language,
        beam_size=beam_size,
        best_of=5,
        condition_on_previous_text=True,
        vad_filter=True,
        vad_parameters=VAD,
    )
    separator = "" if info.language in NO_SPACE_LANGUAGES else " "
    return separator.join(segment.text.strip() for segment in segments)
