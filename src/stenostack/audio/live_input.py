"""Live audio as the Realtime API sends it, converted piece by piece for the model.

Clients append raw audio in one of OpenAI's realtime formats: 16-bit little-endian PCM
(``audio/pcm``, 24 kHz in OpenAI's API; other rates are accepted here), or 8 kHz G.711
(``audio/pcmu``, ``audio/pcma``). PyAV decodes G.711 and resamples, keeping its filter
state between pieces so that the joins are seamless. A large append is converted one short
piece at a time: handed to the resampler whole, a 15 MiB append costs ~150 MB of scratch
memory; in pieces, little more than its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext

from stenostack.audio.samples import Int16Audio

LiveFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
OPENAI_PCM_RATE = 24_000  # the one rate OpenAI takes audio/pcm at
G711_RATE = 8000
G711_CODECS = {"audio/pcmu": "pcm_mulaw", "audio/pcma": "pcm_alaw"}
# The most input audio handed to the decoder and resampler at once.
PIECE_SECONDS = 1.0


@dataclass(frozen=True)
class LiveAudioFormat:
    type: LiveFormat = "audio/pcm"
    rate: int = OPENAI_PCM_RATE  # only used for audio/pcm

    @property
    def input_rate(self) -> int:
        return self.rate if self.type == "audio/pcm" else G711_RATE

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.type == "audio/pcm" else 1


class LiveAudioConverter:
    """Turns appended bytes into mono 16-bit samples at the model's rate, in order."""

    def __init__(self, audio_format: LiveAudioFormat, target_rate: int) -> None:
        self.format = audio_format
        self.target_rate = target_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=target_rate)
        self._decoder: AudioCodecContext | None = None
        if audio_format.type in G711_CODECS:
            codec = av.CodecContext.create(G711_CODECS[audio_format.type], "r")
            self._decoder = cast(AudioCodecContext, codec)
            self._decoder.sample_rate = G711_RATE
            self._decoder.layout = "mono"

    def convert(self, data: bytes) -> Int16Audio:
        """Samples for ``data``; its length must be whole samples (see ``bytes_per_sample``)."""
        piece_bytes = int(PIECE_SECONDS * self.format.input_rate) * self.format.bytes_per_sample
        pieces = [
            samples
            for start in range(0, len(data), piece_bytes)
            for samples in self._convert_piece(data[start : start + piece_bytes])
        ]
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(pieces).astype(np.int16, copy=False)

    def _convert_piece(self, data: bytes) -> list[npt.NDArray[Any]]:
        if self._decoder is not None:
            frames = self._decoder.decode(av.Packet(data))
        else:
            pcm = np.frombuffer(data, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = self.format.rate
            frames = [frame]
        return [
            out.to_ndarray().reshape(-1)
            for frame in frames
            for out in self._resampler.resample(frame)
        ]
