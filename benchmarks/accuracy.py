"""Word error rate and real-time factor of each bundled model, through the HTTP API.

Run from the repository root: ``python -m benchmarks.accuracy`` (or ``make bench-accuracy``).
It starts an engine on a loopback port, sends the test speech (espeak-ng, made here) and
prints one line per model and recording.
"""

from __future__ import annotations

import time

from tests.servers import engine_server, openai_client
from tests.speech import Recording, compose, wav_bytes
from tests.texts import LONG_SILENCE, STORY
from tests.wer import word_error_rate

SPANISH = [
    "Buenos días. Hoy hace muy buen tiempo y vamos a caminar por el parque.",
    "El tren sale de la estación central cada hora.",
    "Mi color favorito es el verde y me gusta leer por la noche.",
]


def recordings() -> dict[str, tuple[Recording, str | None]]:
    story: list[str | float] = [1.0]
    for index, sentence in enumerate(STORY):
        story += [sentence, LONG_SILENCE if index in (5, 11) else 0.8]
    spanish: list[str | float] = [0.5]
    for sentence in SPANISH:
        spanish += [sentence, 0.8]
    return {
        "english story (noise, long pauses)": (compose(story, noise_level=0.002), "en"),
        "spanish sentences": (compose(spanish, voice="es"), None),
    }


def main() -> None:
    models = {"whisper-base": None, "whisper-tiny.en": "en"}
    with engine_server() as server:
        client = openai_client(server.url, timeout=900)
        print(f"{'model':<16} {'recording':<36} {'audio s':>8} {'WER':>7} {'RTF':>7}")
        for name, (recording, language) in recordings().items():
            wav = wav_bytes(recording.samples)
            for model, only in models.items():
                if only is not None and language != only:
                    continue
                started = time.perf_counter()
                result = client.audio.transcriptions.create(model=model, file=("a.wav", wav))
                elapsed = time.perf_counter() - started
                error_rate = word_error_rate(recording.text, result.text)
                rtf = elapsed / recording.duration
                print(
                    f"{model:<16} {name:<36} {recording.duration:8.1f} {error_rate:7.3f} {rtf:7.3f}"
                )


if __name__ == "__main__":
    main()
