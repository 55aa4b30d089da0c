"""Every container, codec, sample format, rate and channel count a user may upload."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import numpy as np
import pytest
from openai import OpenAI

from tests.speech import RATE, Recording, Samples, compose, pyav_encode, sox_encode, wav_bytes
from tests.wer import word_error_rate

TEXT = "Please remember to bring your umbrella tomorrow."

ENCODINGS: dict[str, tuple[str, Callable[[Samples], bytes]]] = {
    "wav-u8": ("a.wav", lambda s: wav_bytes(s, extra=("-b", "8", "-e", "unsigned-integer"))),
    "wav-s16": ("a.wav", lambda s: wav_bytes(s)),
    "wav-s24": ("a.wav", lambda s: wav_bytes(s, extra=("-b", "24"))),
    "wav-s32": ("a.wav", lambda s: wav_bytes(s, extra=("-b", "32"))),
    "wav-f32": ("a.wav", lambda s: wav_bytes(s, extra=("-e", "floating-point", "-b", "32"))),
    "wav-8khz": ("a.wav", lambda s: wav_bytes(s, extra=("-r", "8000", "-b", "16"))),
    "wav-44k-stereo": (
        "a.wav",
        lambda s: wav_bytes(s, extra=("-r", "44100", "-c", "2", "-b", "16")),
    ),
    "wav-6ch-96k": ("a.wav", lambda s: wav_bytes(s, extra=("-r", "96000", "-c", "6", "-b", "16"))),
    "mp3": ("a.mp3", lambda s: pyav_encode(s, "mp3", "libmp3lame", rate=44_100)),
    "flac": ("a.flac", lambda s: sox_encode(s, "flac")),
    "ogg-vorbis": ("a.ogg", lambda s: sox_encode(s, "ogg", ("-r", "44100"))),
    "opus": ("a.opus", lambda s: pyav_encode(s, "ogg", "libopus")),
    "webm": ("a.webm", lambda s: pyav_encode(s, "webm", "libopus")),
    "m4a-aac": ("a.m4a", lambda s: pyav_encode(s, "ipod", "aac", rate=44_100)),
    "mp4-video": ("a.mp4", lambda s: pyav_encode(s, "mp4", "aac", with_video=True)),
}


@pytest.fixture(scope="module")
def recording() -> Recording:
    return compose([0.4, TEXT, 0.4])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_format_is_decoded_and_transcribed(
    client: OpenAI, recording: Recording, encoding: str
) -> None:
    filename, encode = ENCODINGS[encoding]
    result = client.audio.transcriptions.create(
        model="whisper-tiny.en", file=(filename, encode(recording.samples)),
        response_format="verbose_json",
    )  # fmt: skip
    assert word_error_rate(TEXT, result.text) <= 0.2, result.text
    assert result.duration == pytest.approx(recording.duration, abs=0.1)


def test_stereo_with_speech_in_one_channel_only(client: OpenAI, recording: Recording) -> None:
    """Mixing to mono keeps a voice that is on the left channel only."""
    left = recording.samples
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(-1)
    wav = subprocess.run(
        ["sox", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "2", "-r", str(RATE), "-",
         "-b", "16", "-t", "wav", "-"],
        input=stereo.astype(np.float32).tobytes(), check=True, capture_output=True,
    ).stdout  # fmt: skip
    result = client.audio.transcriptions.create(model="whisper-tiny.en", file=("a.wav", wav))
    assert word_error_rate(TEXT, result.text) <= 0.2, result.text
