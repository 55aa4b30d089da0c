"""Beam 1 (greedy) against beam 5 on this machine: error rate per recording and throughput.

Run from the repository root: ``python -m benchmarks.beam_size``. It starts one engine
per beam size (``--beam-size N``, the bundled models, every core) and sends over HTTP with
the official ``openai`` client the synthetic English story (both models, language given)
and four sentences per language of ``tests/texts.py`` (whisper-base, language detected) to
each; then the short-clip workload of ``benchmarks/throughput.py`` at concurrency 16, to
one engine at a time, alternating between them for ``--rounds`` rounds so that a busy
machine weighs on both alike. It prints both beam sizes side by side: error rates (CER for
Chinese, Japanese and Korean, WER elsewhere) and audio seconds per wall second (the median
of the rounds), with beam 5's throughput as a ratio of beam 1's. This is what
``DEFAULT_BEAM_SIZE`` (``models/registry.py``) is chosen from.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import jiwer
from openai import omit
from tests.servers import RunningServer, engine_server, openai_client
from tests.speech import compose, wav_bytes
from tests.texts import SENTENCES, STORY, VOICES
from tests.wer import normalise, word_error_rate

from benchmarks.workloads import Clip, short_clips

BEAM_SIZES = (1, 5)
CHARACTER_SCORED = {"ja", "zh", "ko"}
CONCURRENCY = 16


@dataclass
class Scored:
    """One recording to score: what it says, which models hear it, the language to send."""

    name: str
    wav: bytes
    reference: str
    language: str  # the language spoken (scored by characters or words)
    models: tuple[str, ...]
    send_language: str | None  # None: the engine detects it


@dataclass
class Results:
    errors: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, name)
    # model: audio seconds per wall second, one per round
    throughput: dict[str, list[float]] = field(default_factory=dict)


def recordings() -> list[Scored]:
    story: list[str | float] = [1.0]
    for sentence in STORY:
        story += [sentence, 0.8]
    english = compose(story, noise_level=0.002)
    scored = [
        Scored(
            "en story",
            wav_bytes(english.samples),
            english.text,
            "en",
            ("whisper-base", "whisper-tiny.en"),
            "en",
        )
    ]
    for language, sentences in SENTENCES.items():
        parts: list[str | float] = [0.5]
        for sentence in sentences:
            parts += [sentence, 0.8]
        recording = compose(parts, voice=VOICES[language])
        name = f"{language} sentences"
        scored.append(
            Scored(
                name,
                wav_bytes(recording.samples),
                recording.text,
                language,
                ("whisper-base",),
                None,
            )
        )
    return scored


def error_rate(language: str, reference: str, hypothesis: str) -> float:
    if language in CHARACTER_SCORED:
        strip = "".join(ch for ch in normalise(reference) if not ch.isspace())
        heard = "".join(ch for ch in normalise(hypothesis) if not ch.isspace())
        rate: float = jiwer.cer(strip, heard or "<empty>")
        return rate
    return word_error_rate(reference, hypothesis)


def throughput(server: RunningServer, model: str, clips: list[Clip]) -> float:
    client = openai_client(server.url, timeout=1800)

    def send(clip: Clip) -> str:
        return client.audio.transcriptions.create(
            model=model, file=(f"{clip.name}.wav", clip.wav), language="en"
        ).text

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(send, clips))
    return sum(c.duration for c in clips) / (time.perf_counter() - started)


def score(server: RunningServer, scored: list[Scored]) -> dict[tuple[str, str], float]:
    client = openai_client(server.url, timeout=1800)
    errors = {}
    for recording in scored:
        for model in recording.models:
            text = client.audio.transcriptions.create(
                model=model,
                file=("a.wav", recording.wav),
                language=recording.send_language or omit,
            ).text
            errors[(model, recording.name)] = error_rate(
                recording.language, recording.reference, text
            )
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=32, help="short clips in the workload")
    parser.add_argument("--rounds", type=int, default=2, help="throughput runs per beam size")
    args = parser.parse_args()
    scored = recordings()
    clips = short_clips(args.clips)
    models = ["whisper-tiny.en", "whisper-base"]
    by_beam = {beam: Results() for beam in BEAM_SIZES}
    with ExitStack() as stack:
        servers = {
            beam: stack.enter_context(engine_server("--beam-size", str(beam)))
            for beam in BEAM_SIZES
        }
        for beam, server in servers.items():
            by_beam[beam].errors = score(server, scored)  # also warms every model up
        for model in models:
            for _ in range(args.rounds):
                for beam, server in servers.items():
                    rate = throughput(server, model, clips)
                    by_beam[beam].throughput.setdefault(model, []).append(rate)
    first, second = BEAM_SIZES
    print(f"{'model':<16} {'recording':<14} {'beam ' + str(first):>8} {'beam ' + str(second):>8}")
    for model, name in by_beam[first].errors:
        cells = " ".join(f"{by_beam[b].errors[(model, name)]:8.3f}" for b in BEAM_SIZES)
        print(f"{model:<16} {name:<14} {cells}")
    for model in models:
        rates = [
            sum(r for (m, _), r in by_beam[b].errors.items() if m == model) for b in BEAM_SIZES
        ]
        count = sum(1 for m, _ in by_beam[first].errors if m == model)
        cells = " ".join(f"{rate / count:8.3f}" for rate in rates)
        print(f"{model:<16} {'mean':<14} {cells}")
    print(
        f"\nshort clips ({len(clips)}, {sum(c.duration for c in clips):.0f} s of audio) at "
        f"concurrency {CONCURRENCY}, audio seconds per wall second "
        f"(median of {args.rounds} alternating rounds):"
    )
    print(f"{'model':<16} {'beam ' + str(first):>8} {'beam ' + str(second):>8} {'ratio':>7}")
    for model in models:
        low, high = (statistics.median(by_beam[b].throughput[model]) for b in BEAM_SIZES)
        print(f"{model:<16} {low:8.2f} {high:8.2f} {high / low:7.2f}")


if __name__ == "__main__":
    main()
