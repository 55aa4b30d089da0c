"""Decode any uploaded audio or video file to mono 16-bit PCM at the model's rate, with PyAV.

Decoding is bounded: the decoded duration is checked against the limit as we go, so a long
or lying file never makes us hold more than ``max_seconds`` of audio. A file that ends early
without a decoding error (a cut WAV or MP3) is transcribed as far as it goes, as FFmpeg does.

Before any of that, :func:`probe_audio` reads what the container says about its length, so
the engine can refuse a file that declares too much at once and admit the rest by their
expected length; ``budget_seconds`` then stops a decode whose file turns out longer than it
said, so it can be put back among the long ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
# Containers whose declared length comes from the stream's own timestamps or sample counts.
# Elsewhere (MP3, ADTS AAC, ...) FFmpeg guesses it from the first frames' bit rate, which
# can be off several times for variable bit rates, so it orders work but never refuses it.
DURATION_TRUSTED_FORMATS = frozenset(
    {"ogg", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2", "flac", "wav", "aiff", "caf", "w64"}
)
# A file that declares nothing is assumed to be this dense (a low speech bit rate), so its
# size gives an estimate of its length; decoding settles the truth.
ASSUMED_BITS_PER_SECOND = 32_000


@dataclass(frozen=True)
class DecodedAudio:
    samples: Int16Audio
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class AudioProbe:
    """What a file says of its length before it is decoded."""

    declared_seconds: float | None  # None: the container does not say
    estimated_seconds: float  # the declaration, or a guess from the file's size


class AudioTooLong(InvalidAudio):
    def __init__(self, seconds: float, limit: float, *, at_least: bool = False) -> None:
        length = f"longer than {seconds:.0f} s" if at_least else f"{seconds:.0f} s long"
        super().__init__(
            f"The audio is {length}; this server accepts at most {limit:.0f} s.",
            code="audio_too_long",
        )


class DecodeBudgetExceeded(Exception):
    """The file decodes to more than it was admitted for (not an API error: the engine
    decodes it again as the long file it is)."""


def probe_audio(source: BinaryIO, max_seconds: float) -> AudioProbe:
    """Read the container's header, not its audio; refuse at once a file whose trustworthy
    declaration is over ``max_seconds``. Leaves ``source`` at its start."""
    size = _size(source)
    with _open_audio(source) as (container, stream):
        declared = _declared_seconds(container, stream)
        trusted = declared is not None and container.format.name in DURATION_TRUSTED_FORMATS
        if declared is not None and stream.codec_context.name.startswith("pcm_"):
            # Raw samples cannot be denser than their format: a WAV streamed through a pipe
            # declares ~12 hours, and its size tells the truth.
            bytes_per_second = stream.rate * stream.channels * stream.format.bytes
            declared = min(declared, size / max(bytes_per_second, 1))
    source.seek(0)
    if trusted and declared is not None and declared > max_seconds:
        raise AudioTooLong(declared, max_seconds)
    estimate = declared if declared is not None else size * 8 / ASSUMED_BITS_PER_SECOND
    return AudioProbe(declared, min(estimate, max_seconds))


def decode_audio(
    source: BinaryIO,
    sample_rate: int,
    max_seconds: float,
    *,
    budget_seconds: float | None = None,
) -> DecodedAudio:
    """Decode the first audio stream of ``source``, mixed to mono and resampled.

    Past ``max_seconds`` the file is refused (:class:`AudioTooLong`); past a smaller
    ``budget_seconds`` decoding stops with :class:`DecodeBudgetExceeded`.
    """
    stop_at = max_seconds if budget_seconds is None else min(budget_seconds, max_seconds)
    with _open_audio(source) as (container, stream):
        # Headers can lie, so the limit is enforced on what is decoded as well.
        declared = _declared_seconds(container, stream)
        pieces, clean_end = _decode_stream(container, stream, sample_rate, stop_at)
    decoded = sum(len(piece) for piece in pieces) / sample_rate
    if decoded > stop_at:
        # Judged before the pieces are joined, and dropped before raising (the exception's
        # traceback would keep them alive), so a refused file costs one copy, briefly.
        pieces.clear()
        if decoded > max_seconds:
            raise AudioTooLong(max_seconds, max_seconds, at_least=True)
        raise DecodeBudgetExceeded(f"decoded past the budget of {stop_at:.0f} s")
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)

    _check_complete(decoded, declared, clean_end)
    return DecodedAudio(samples, sample_rate)


def decode_pieces(
    source: BinaryIO,
    sample_rate: int,
    max_seconds: float,
    *,
    budget_seconds: float | None = None,
) -> Iterator[Int16Audio]:
    """:func:`decode_audio`, piece by piece as the file decodes, with the same checks: the
    limit and the budget as soon as they are passed, an empty or truncated file at the end."""
    stop_at = max_seconds if budget_seconds is None else min(budget_seconds, max_seconds)
    limit = int(stop_at * sample_rate)
    total = 0
    clean_end = True
    with _open_audio(source) as (container, stream):
        declared = _declared_seconds(container, stream)
        try:
            for piece in _resampled(container, stream, sample_rate):
                total += len(piece)
                if total > limit:
                    _refuse(total / sample_rate, stop_at, max_seconds)
                yield piece
        except (av.FFmpegError, ValueError) as exc:
            log.info("decoding stopped early: %s", exc)
            clean_end = False
    decoded = total / sample_rate
    _check_complete(decoded, declared, clean_end)


def _resampled(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, sample_rate: int
) -> Iterator[Int16Audio]:
    """The stream's audio as mono 16-bit pieces at ``sample_rate``, the resampler flushed."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    for frame in container.decode(stream):
        frame.pts = None  # let the resampler count; broken timestamps must not matter
        for out in resampler.resample(frame):
            yield _samples(out)
    for out in resampler.resample(None):
        yield _samples(out)


def _check_complete(decoded: float, declared: float | None, clean_end: bool) -> None:
    """Refuse a file that decoded to nothing, or that stopped well short of the length its
    header declares (a truncated or corrupt file)."""
    if decoded == 0:
        raise InvalidAudio("The file contains no audio samples.", code="empty_audio")
    least_expected = declared * TRUNCATION_TOLERANCE - TRUNCATION_SLACK_SECONDS if declared else 0
    if not clean_end and decoded < least_expected:
        raise InvalidAudio(
            f"The file is corrupt or truncated: its header declares {declared:.1f} s of audio "
            f"but decoding failed after {decoded:.1f} s.",
            code="truncated_audio",
        )


def _refuse(decoded: float, stop_at: float, max_seconds: float) -> None:
    if decoded > max_seconds:
        raise AudioTooLong(max_seconds, max_seconds, at_least=True)
    raise DecodeBudgetExceeded(f"decoded past the budget of {stop_at:.0f} s")


def _samples(frame: av.AudioFrame) -> Int16Audio:
    return frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)


@contextmanager
def _open_audio(
    source: BinaryIO,
) -> Iterator[tuple[av.container.InputContainer, av.audio.stream.AudioStream]]:
    """The container and its first audio stream, checked to be decodable audio."""
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
        yield container, stream


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    sample_rate: int,
    max_seconds: float,
) -> tuple[list[Int16Audio], bool]:
    """Decode and resample up to just past ``max_seconds``; return the pieces and whether
    decoding ended without error. The caller judges a result over the limit."""
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
                break
        else:
            for out in resampler.resample(None):
                total += _append(pieces, out)
    except (av.FFmpegError, ValueError) as exc:
        # A corrupt packet mid-stream: keep what decoded; the truncation check judges it.
        log.info("decoding stopped early: %s", exc)
        clean_end = False
    return pieces, clean_end


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


def _size(source: BinaryIO) -> int:
    position = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(position)
    return size


def _is_empty(source: BinaryIO) -> bool:
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty
