"""Throughput, latency, memory and accuracy: this engine against a per-request baseline.

Run from the repository root (``make bench-throughput`` does the same for both models):

    python -m benchmarks.throughput --model whisper-tiny.en

For each workload (many short clips; short clips mixed with multi-minute files) and each
concurrency, it starts a fresh engine and a fresh baseline server (faster-whisper's
``WhisperModel.transcribe`` per request on a thread pool, see ``baseline_server.py``) with
the same model, compute type (int8 on CPU), threads and decoding options, sends the same
requests over HTTP with the official ``openai`` client, and prints throughput (audio seconds
per wall second), p50/p95 latency, peak resident memory and word error rate for both, with
the ratios. It ends with the issue's targets, each marked met or missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jiwer
from tests.servers import RunningServer, engine_server, openai_client, peak_rss_mb, server_process
from tests.wer import normalise

from benchmarks.workloads import Clip, long_files, short_clips
from stenostack.models.sources import resolve_model_dir


@dataclass
class Run:
    wall: float
    audio: float
    latencies: dict[str, float]
    texts: dict[str, str]
    peak_mb: float

    @property
    def throughput(self) -> float:
        return self.audio / self.wall

    def percentile(self, q: float, prefix: str = "") -> float:
        values = sorted(v for k, v in self.latencies.items() if k.startswith(prefix))
        return values[min(int(q * len(values)), len(values) - 1)]

    def wer(self, clips: list[Clip]) -> float:
        references = [normalise(c.recording.text) for c in clips]
        hypotheses = [normalise(self.texts[c.name]) or "<empty>" for c in clips]
        rate: float = jiwer.wer(references, hypotheses)
        return rate


def drive(server: RunningServer, model: str, clips: list[Clip], concurrency: int) -> Run:
    client = openai_client(server.url, timeout=1800)

    def send(clip: Clip) -> tuple[str, float, str]:
        started = time.perf_counter()
        result = client.audio.transcriptions.create(
            model=model, file=(f"{clip.name}.wav", clip.wav), language="en"
        )
        return clip.name, time.perf_counter() - started, result.text

    send(clips[-1])  # warm up: the first model call of a process is slower
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(send, clips))
    wall = time.perf_counter() - started
    return Run(
        wall=wall,
        audio=sum(c.duration for c in clips),
        latencies={name: latency for name, latency, _ in results},
        texts={name: text for name, _, text in results},
        peak_mb=peak_rss_mb(server.process.pid),
    )


def measure(model: str, threads: int, clips: list[Clip], concurrency: int) -> tuple[Run, Run]:
    with engine_server("--model", model, "--cpu-threads", str(threads)) as server:
        engine = drive(server, model, clips, concurrency)
    baseline_command = [sys.executable, "-m", "benchmarks.baseline_server", "--model-dir",
                        str(resolve_model_dir(model)), "--cpu-threads", str(threads)]  # fmt: skip
    with server_process(baseline_command) as server:
        baseline = drive(server, model, clips, concurrency)
    return engine, baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--short-clips", type=int, default=48)
    parser.add_argument("--long-files", type=int, default=2)
    parser.add_argument("--long-minutes", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    shorts = short_clips(args.short_clips)
    longs = long_files(args.long_files, args.long_minutes)
    workloads = {
        "short": shorts,
        # The long files go first, so the short clips queue behind them.
        "mixed": longs + shorts[: args.short_clips // 2],
    }
    print(f"model {args.model}, int8 on CPU, {args.threads} threads; greedy decoding with the "
          "temperature ladder, VAD, previous-text conditioning on both sides")  # fmt: skip
    for name, clips in workloads.items():
        seconds = sum(c.duration for c in clips)
        print(f"workload {name}: {len(clips)} requests, {seconds:.0f} s of audio")

    header = (f"{'workload':<8} {'conc':>4} | {'system':<9} {'audio s/s':>9} {'p50 s':>7} "
              f"{'p95 s':>7} {'short p95':>9} {'peak MB':>8} {'WER':>6}")  # fmt: skip
    print("\n" + header + "\n" + "-" * len(header))
    results: dict[tuple[str, int], tuple[Run, Run]] = {}
    for name, clips in workloads.items():
        for concurrency in args.concurrency:
            engine, baseline = measure(args.model, args.threads, clips, concurrency)
            results[(name, concurrency)] = (engine, baseline)
            for label, run in (("engine", engine), ("baseline", baseline)):
                print(f"{name:<8} {concurrency:>4} | {label:<9} {run.throughput:9.1f} "
                      f"{run.percentile(0.5):7.2f} {run.percentile(0.95):7.2f} "
                      f"{run.percentile(0.95, 'short'):9.2f} {run.peak_mb:8.0f} "
                      f"{run.wer(clips):6.3f}")  # fmt: skip
            print(f"{name:<8} {concurrency:>4} | {'ratio':<9} "
                  f"{engine.throughput / baseline.throughput:8.2f}x "
                  f"{engine.percentile(0.5) / baseline.percentile(0.5):6.2f}x "
                  f"{engine.percentile(0.95) / baseline.percentile(0.95):6.2f}x "
                  f"{engine.percentile(0.95, 'short') / baseline.percentile(0.95, 'short'):8.2f}x "
                  f"{engine.peak_mb / baseline.peak_mb:7.2f}x "
                  f"{engine.wer(clips) - baseline.wer(clips):+6.3f}")  # fmt: skip

    print("\ntargets:")
    met = True

    def target(description: str, ok: bool) -> None:
        nonlocal met
        met &= ok
        print(f"  [{'met' if ok else 'MISSED'}] {description}")

    top = max(args.concurrency)
    for name, factor in (("short", 3.0), ("mixed", 1.5)):
        if (name, top) in results:
            engine, baseline = results[(name, top)]
            ratio = engine.throughput / baseline.throughput
            target(f"{name} workload, concurrency {top}: throughput {ratio:.2f}x the "
                   f"baseline (target >= {factor}x)", ratio >= factor)  # fmt: skip
    for name in workloads:
        if (name, 1) in results:
            engine, baseline = results[(name, 1)]
            ratio = statistics.mean(engine.latencies.values()) / statistics.mean(
                baseline.latencies.values()
            )
            target(f"{name} workload, concurrency 1: mean latency {ratio:.2f}x the baseline's "
                   "(target <= 1.10x)", ratio <= 1.10)  # fmt: skip
    for (name, concurrency), (engine, baseline) in results.items():
        clips = workloads[name]
        difference = engine.wer(clips) - baseline.wer(clips)
        target(f"{name} workload, concurrency {concurrency}: WER {engine.wer(clips):.3f} vs "
               f"{baseline.wer(clips):.3f} (target: at most 0.005 above)",
               difference <= 0.005)  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
