"""Decode any uploaded audio or video file to mono 16-bit PCM at the model's rate, with PyAV.

Decoding is bounded: the decoded duration is checked against the limit as we go, so a long
or lying file never makes us hold more than ``max_seconds`` of audio. A file that ends early
without a decoding error (a cut WAV or MP3) is transcribed as far as it goes, as FFmpeg does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np

from stenostack.audio.samples import Int16Audio
from stenostack.errors import InvalidAudio

log = logging.getLogger(__name__)

MIN_SOURCE_RATE = 1_000
MAX_SOURCE_RATE = 1_536_000
# A decode that fails this far short of the declared duration means a corrupt file; a
# failure near the end is trailing garbage, and what decoded is kept.
TRUNCATION_TOLERANCE = 0.9
# Besides, this much is forgiven: a declared duration is only approximate (rounded headers,
# encoder delay and padding), and 10 % of a short file is too little to judge by.
TRUNCATION_SLACK_SECONDS = 0.5


@dataclass(frozen=True)
class DecodedAudio:
    samples: Int16Audio
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class AudioTooLong(InvalidAudio):
    def __init__(self, seconds: float, limit: float) -> None:
        super().__init__(
            f"The audio is {seconds:.0f} s long; this server accepts at most {limit:.0f} s.",
            code="audio_too_long",
        )


def decode_audio(source: BinaryIO, sample_rate: int, max_seconds: float) -> DecodedAudio:
    """Decode the first audio stream of ``source``, mixed to mono and resampled."""
    if _is_empty(source):
        raise InvalidAudio("The uploaded file is empty.", code="empty_file")
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidAudio(
            "The file could not be read as audio. Supported formats include WAV, MP3, FLAC, "
            "Ogg/Vorbis, Opus, WebM, M4A/AAC and MP4 with an audio track.",
        ) from exc
    with container:
        if not container.streams.audio:
            raise InvalidAudio("The file has no audio track.", code="no_audio_track")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.sample_rate or 0
        if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
            raise InvalidAudio(
                f"Unsupported sample rate {rate} Hz: expected between {MIN_SOURCE_RATE} and "
                f"{MAX_SOURCE_RATE} Hz.",
                code="unsupported_sample_rate",
            )
        # Headers can lie (a WAV streamed through a pipe declares ~12 hours), so the limit
        # is enforced on what is decoded, never on what the file declares.
        declared = _declared_seconds(container, stream)
        samples, clean_end = _decode_stream(container, stream, sample_rate, max_seconds)

    decoded = len(samples) / sample_rate
    if decoded == 0:
        raise InvalidAudio("The file contains no audio samples.", code="empty_audio")
    least_expected = declared * TRUNCATION_TOLERANCE - TRUNCATION_SLACK_SECONDS if declared else 0
    if not clean_end and decoded < least_expected:
        raise InvalidAudio(
            f"The file is corrupt or truncated: its header declares {declared:.1f} s of audio "
            f"but decoding failed after {decoded:.1f} s.",
            code="truncated_audio",
        )
    return DecodedAudio(samples, sample_rate)


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    sample_rate: int,
    max_seconds: float,
) -> tuple[Int16Audio, bool]:
    """Decode and resample; return the samples and whether decoding ended without error."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    limit = int(max_seconds * sample_rate)
    pieces: list[Int16Audio] = []
    total = 0
    clean_end = True
    try:
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler count; broken timestamps must not matter
            for out in resampler.resample(frame):
                total += _append(pieces, out)
            if total > limit:
                raise AudioTooLong(total / sample_rate, max_seconds)
        for out in resampler.resample(None):
            total += _append(pieces, out)
    except (av.FFmpegError, ValueError) as exc:
        # A corrupt packet mid-stream: keep what decoded; the truncation check judges it.
        log.info("decoding stopped early: %s", exc)
        clean_end = False
    if total > limit:
        raise AudioTooLong(total / sample_rate, max_seconds)
    if not pieces:
        return np.zeros(0, dtype=np.int16), clean_end
    return np.concatenate(pieces), clean_end


def _append(pieces: list[Int16Audio], frame: av.AudioFrame) -> int:
    array = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
    pieces.append(array)
    return len(array)


def _declared_seconds(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _is_empty(source: BinaryIO) -> bool:
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty
