"""The autoscaling target, derived from the model's measured speed on this machine.

Run from the repository root:

    python -m benchmarks.autoscaling_target --model whisper-tiny.en whisper-base

The chart scales engines on ``stenostack_queued_audio_seconds``: audio admitted by one
engine and not yet finished (queued and running). An engine that works through ``S`` audio
seconds per wall second holds a queue of ``Q`` audio seconds for about ``Q / S`` seconds, so
a request that arrives now waits about that long before its own audio is done. The target
per replica is therefore ``S x W``, where ``W`` is the wait a team accepts.

For each model it starts one engine, keeps it saturated with the mixed workload (multi-minute
files and short clips, ``--concurrency`` at a time, over HTTP with the official client), and
samples the gauge every 0.2 s. It prints the engine's speed ``S``, the mean queue the gauge
showed, and the mean queue Little's law gives from the requests alone (each request holds
its audio ``d`` for its latency ``L``: mean queue = sum(d x L) / wall time), then the target
for a few accepted waits. The two means agreeing is the check that the gauge tracks the
work; ``Q / S`` is how long the engine needs to work through what it holds, an upper bound
on a new request's wait (a short clip is batched beside the work ahead, not behind it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.servers import RunningServer, engine_server, metric, openai_client

from benchmarks.workloads import Clip, long_files, short_clips

QUEUED = "stenostack_queued_audio_seconds"
SAMPLE_EVERY_S = 0.2


def queue_samples(server: RunningServer, model: str, until: threading.Event) -> list[float]:
    """The engine's queued audio, every :data:`SAMPLE_EVERY_S`, until ``until`` is set."""
    samples: list[float] = []
    while not until.wait(SAMPLE_EVERY_S):
        samples.append(metric(server, QUEUED, model=model))
    return samples


def saturate(model: str, clips: list[Clip], concurrency: int, threads: int) -> None:
    with engine_server("--model", model, "--cpu-threads", str(threads)) as server:
        client = openai_client(server.url, timeout=1800)

        def send(clip: Clip) -> float:
            """The audio seconds this request held in the engine, times how long."""
            started = time.perf_counter()
            client.audio.transcriptions.create(
                model=model, file=(f"{clip.name}.wav", clip.wav), language="en"
            )
            return clip.duration * (time.perf_counter() - started)

        send(clips[-1])  # warm up: the first model call of a process is slower
        done = threading.Event()
        queue: list[float] = []
        sampler = threading.Thread(
            target=lambda: queue.extend(queue_samples(server, model, done)), daemon=True
        )
        sampler.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            held = list(pool.map(send, clips))
        wall = time.perf_counter() - started
        done.set()
        sampler.join()

    audio = sum(clip.duration for clip in clips)
    speed = audio / wall
    gauge = statistics.fmean(queue)
    little = sum(held) / wall
    print(
        f"{model:<16} {speed:8.1f} {gauge:9.0f} {little:10.0f} {gauge / little:6.2f}x "
        f"{gauge / speed:7.1f} | " + " ".join(f"{speed * wait:8.0f}" for wait in WAITS_S)
    )


WAITS_S = (5, 10, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", default=["whisper-tiny.en", "whisper-base"])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--short-clips", type=int, default=48)
    parser.add_argument("--long-files", type=int, default=2)
    parser.add_argument("--long-minutes", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    clips = long_files(args.long_files, args.long_minutes) + short_clips(args.short_clips)
    audio = sum(clip.duration for clip in clips)
    print(
        f"{len(clips)} requests, {audio:.0f} s of audio, {args.concurrency} at a time; "
        f"int8 on CPU, {args.threads} threads"
    )
    waits = " ".join(f"{f'W={wait} s':>8}" for wait in WAITS_S)
    header = (
        f"{'model':<16} {'S (x RT)':>8} {'gauge Q':>9} {'Little Q':>10} {'ratio':>7} "
        f"{'Q / S':>7} | target = S x W: {waits}"
    )
    print(header + "\n" + "-" * len(header))
    for model in args.model:
        saturate(model, clips, args.concurrency, args.threads)


if __name__ == "__main__":
    main()
