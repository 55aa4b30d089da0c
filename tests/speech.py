"""Test speech with known words: espeak-ng speaks, sox and PyAV shape and encode it."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

RATE = 16_000
# sox dithers with random noise when it lowers the bit depth; without that, the same speech
# makes the same bytes on every run, so tests and benchmarks hear the same input each time.
SOX = ("sox", "--no-dither")
Samples = npt.NDArray[np.float32]


def speak(text: str, voice: str = "en-us", speed: int = 130) -> Samples:
    """espeak-ng speech as float32 mono at 16 kHz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    converted = subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1",
         "-r", str(RATE), "-"],
        input=wav, check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(converted, dtype=np.float32).copy()


def silence(seconds: float) -> Samples:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def noise(seconds: float, level: float = 0.003, seed: int = 0) -> Samples:
    generator = np.random.default_rng(seed)
    return (generator.standard_normal(int(seconds * RATE)) * level).astype(np.float32)


@dataclass
class Utterance:
    text: str
    start: float
    end: float


@dataclass
class Recording:
    samples: Samples
    utterances: list[Utterance]

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.utterances)

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE


def compose(
    parts: list[str | float], voice: str = "en-us", noise_level: float = 0.0, speed: int = 130
) -> Recording:
    """Sentences (str) and pauses (float seconds) laid end to end, with optional noise."""
    pieces: list[Samples] = []
    utterances = []
    position = 0.0
    for part in parts:
        if isinstance(part, str):
            speech = speak(part, voice, speed)
            utterances.append(Utterance(part, position, position + len(speech) / RATE))
            pieces.append(speech)
            position += len(speech) / RATE
        else:
            pieces.append(silence(part))
            position += part
    samples = np.concatenate(pieces)
    if noise_level:
        samples = samples + noise(len(samples) / RATE, noise_level)
    return Recording(samples.astype(np.float32), utterances)


def wav_bytes(samples: Samples, rate: int = RATE, extra: tuple[str, ...] = ()) -> bytes:
    """A WAV file via sox; ``extra`` sets the output encoding, rate or channels."""
    return subprocess.run(
        [*SOX, "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(rate), "-",
         *(extra or ("-b", "16")), "-t", "wav", "-"],
        input=samples.tobytes(), check=True, capture_output=True,
    ).stdout  # fmt: skip


def speech_file(text: str, voice: str) -> tuple[str, bytes]:
    """``text`` spoken in ``voice`` between short pauses, as the SDK's ``file`` argument."""
    recording = compose([0.3, text, 0.3], voice=voice)
    return ("speech.wav", wav_bytes(recording.samples))


def raw_pcm(samples: Samples, rate: int = 24_000, encoding: str = "signed") -> bytes:
    """Headerless mono audio as the Realtime API takes it: 16-bit PCM, or 8-bit G.711
    (``encoding`` ``mu-law`` or ``a-law``)."""
    bits = "16" if encoding == "signed" else "8"
    return subprocess.run(
        [*SOX, "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(RATE), "-",
         "-t", "raw", "-e", encoding, "-b", bits, "-r", str(rate), "-"],
        input=samples.tobytes(), check=True, capture_output=True,
    ).stdout  # fmt: skip


def sox_encode(samples: Samples, file_type: str, extra: tuple[str, ...] = ()) -> bytes:
    return subprocess.run(
        [*SOX, "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(RATE), "-",
         *extra, "-t", file_type, "-"],
        input=samples.tobytes(), check=True, capture_output=True,
    ).stdout  # fmt: skip


def pyav_encode(
    samples: Samples,
    container_format: str,
    codec: str,
    rate: int = 48_000,
    layout: str = "stereo",
    with_video: bool = False,
) -> bytes:
    """Encode with FFmpeg through PyAV (MP3, Opus, WebM, M4A, MP4 with a video track)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        video = None
        if with_video:
            video = container.add_stream("mpeg4", rate=10)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(audio, av.audio.stream.AudioStream)
        resampler = av.AudioResampler(format=audio.format.name, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts = None
        frame_size = audio.codec_context.frame_size or 1024
        fifo = av.AudioFifo()
        for resampled in resampler.resample(frame) + resampler.resample(None):
            fifo.write(resampled)
        for chunk in fifo.read_many(frame_size, partial=True):
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
        if video is not None:
            seconds = len(samples) / RATE
            for index in range(int(seconds * 10)):
                picture = av.VideoFrame.from_ndarray(
                    np.full((48, 64, 3), index % 255, dtype=np.uint8), format="rgb24"
                )
                picture.pts = index
                picture.time_base = Fraction(1, 10)
                for packet in video.encode(picture):
                    container.mux(packet)
            for packet in video.encode(None):
                container.mux(packet)
    return buffer.getvalue()


def save(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def decoded(data: bytes) -> Samples:
    """An audio file's samples as float32 mono at 16 kHz (the engine's own decoder)."""
    from stenostack.audio.decode import decode_audio
    from stenostack.audio.samples import to_float32

    return to_float32(decode_audio(io.BytesIO(data), RATE, 3600.0).samples)
