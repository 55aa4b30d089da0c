"""Decode bombs: small Opus files that decode to hours of audio.

One minute of quiet noise is encoded once at Opus's lowest bit rate and its packets repeated
with shifted timestamps, so an hour costs under a second to build and about 1.7 MB to send.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

OPUS_RATE = 48_000
CHUNK_SECONDS = 60


def opus_bomb(seconds: float, *, declares_length: bool = True) -> bytes:
    """``seconds`` of Opus audio: in Ogg (whose last page declares the length), or in a
    live WebM that declares none, as a stream from a pipe would."""
    packets, time_base = _encoded_chunk()
    out = io.BytesIO()
    container_format, options = ("ogg", {}) if declares_length else ("webm", {"live": "1"})
    with av.open(out, "w", format=container_format, container_options=options) as container:
        stream = container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        step = int(CHUNK_SECONDS / time_base)
        for repeat in range(int(seconds // CHUNK_SECONDS)):
            for pts, duration, data in packets:
                packet = av.Packet(data)
                packet.pts = packet.dts = pts + repeat * step
                packet.duration = duration
                packet.time_base = time_base
                packet.stream = stream
                container.mux(packet)
    return out.getvalue()


def _encoded_chunk() -> tuple[list[tuple[int, int, bytes]], Fraction]:
    """One chunk of Opus packets (pts, duration, payload) and their time base."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream(
            "libopus", rate=OPUS_RATE, layout="mono", options={"frame_duration": "60"}
        )
        stream.bit_rate = 6_000
        noise = np.random.default_rng(0).standard_normal(OPUS_RATE * CHUNK_SECONDS) * 300
        frame = av.AudioFrame.from_ndarray(
            noise.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.time_base is not None
        packets = [
            (int(p.pts or 0), int(p.duration or 0), bytes(p))
            for p in container.demux(stream)
            if p.size
        ]
        return packets, stream.time_base
