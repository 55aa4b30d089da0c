"""Peak memory and speed of the engine on a one-hour file.

Run from the repository root: ``python -m benchmarks.long_audio_memory [minutes]``. It
builds an hour of speech with pauses (the test story, repeated), starts an engine serving
whisper-tiny.en, and reads the engine's peak resident memory (VmHWM) before and after.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from tests.servers import engine_server, openai_client, peak_rss_mb
from tests.speech import RATE, compose, wav_bytes
from tests.texts import STORY
from tests.wer import word_error_rate


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    parts: list[str | float] = []
    for index, sentence in enumerate(STORY):
        parts += [sentence, 0.7 if index % 4 else 6.0]
    story = compose(parts, noise_level=0.002)
    repeats = int(np.ceil(minutes * 60 / story.duration))
    samples = np.tile(story.samples, repeats)[: int(minutes * 60 * RATE)]
    wav = wav_bytes(samples)
    print(f"audio: {len(samples) / RATE / 60:.1f} min, upload {len(wav) / 1e6:.0f} MB")
    with engine_server("--model", "whisper-tiny.en") as server:
        client = openai_client(server.url, timeout=3600)
        warm = compose(["Warm up."])
        client.audio.transcriptions.create(
            model="whisper-tiny.en", file=("w.wav", wav_bytes(warm.samples))
        )
        idle = peak_rss_mb(server.process.pid)
        started = time.perf_counter()
        result = client.audio.transcriptions.create(
            model="whisper-tiny.en", file=("hour.wav", wav), response_format="verbose_json"
        )
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb(server.process.pid)
    expected = " ".join([story.text] * repeats)
    print(f"engine peak RSS before: {idle:.0f} MB, after: {peak:.0f} MB (+{peak - idle:.0f} MB)")
    print(f"wall {elapsed:.0f} s, real-time factor {elapsed / (len(samples) / RATE):.3f}")
    segments = result.segments or []
    last_end = segments[-1].end if segments else 0.0
    print(f"segments {len(segments)}, last one ends at {last_end:.1f} s")
    error_rate = word_error_rate(expected, result.text)
    print(f"WER against the repeated script (last repeat cut short): {error_rate:.3f}")


if __name__ == "__main__":
    main()
