"""What the router costs, and what least-load routing gains.

    python -m benchmarks.router_overhead

Backends are FAKE engines (``tests/fake_backend.py``: the engine's HTTP API, no model), so the
figures are the router's own. Side by side in one run:

1. **Added latency and CPU**: small transcription requests (a 1 kB upload) at concurrency 1,
   straight to a backend that answers at once and through the router: p50 and p99 latency,
   their difference, and the router process's CPU time per request. Then throughput at
   concurrency 16, direct and through the router.
2. **Memory**: 20 uploads of 200 MB at once through the router: its peak resident memory
   over idle, and whether it left any temporary file.
3. **Least load against round robin**: three backends of unequal speed (each one request at
   a time, taking 0.02, 0.06 and 0.2 s per audio second), a seeded workload of mostly 2 s
   clips and some 60 s files arriving at a steady rate; p95 latency under each policy.

It ends with the issue's targets, each marked met or missed, and exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
from tests.servers import RunningServer, peak_rss_mb, router_server, server_process

from benchmarks.report import percentile, report_targets

MODEL = "whisper-tiny.en"
TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def fake_backend(seconds_per_audio_second: float = 0.0) -> Iterator[RunningServer]:
    command = [sys.executable, "-m", "tests.fake_backend", "--seconds-per-audio-second",
               str(seconds_per_audio_second)]  # fmt: skip
    with server_process(command, ready_timeout=30) as server:
        yield server


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def form(audio: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{MODEL}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def timed_requests(
    url: str, count: int, concurrency: int, body: bytes, kind: str
) -> list[float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(
                f"{url}/v1/audio/transcriptions", data=body, headers={"content-type": kind}
            ) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - started)

        async def worker(share: int) -> None:
            for _ in range(share):
                await one()

        await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    return latencies


def overhead(requests: int) -> dict[str, float]:
    body, kind = form(b"RIFF" + b"\0" * 1020)
    with fake_backend() as backend, router_server("--backend", backend.url) as router:
        for url in (backend.url, router.url):  # warm connections and code paths
            asyncio.run(timed_requests(url, 50, 1, body, kind))
        direct = asyncio.run(timed_requests(backend.url, requests, 1, body, kind))
        cpu_before = cpu_seconds(router.process.pid)
        routed = asyncio.run(timed_requests(router.url, requests, 1, body, kind))
        cpu_per_request = (cpu_seconds(router.process.pid) - cpu_before) / requests
        rates = {}
        for name, url in (("direct", backend.url), ("router", router.url)):
            started = time.perf_counter()
            asyncio.run(timed_requests(url, requests, 16, body, kind))
            rates[name] = requests / (time.perf_counter() - started)
    p50_added = statistics.median(routed) - statistics.median(direct)
    p99_added = percentile(routed, 0.99) - percentile(direct, 0.99)
    print(f"\nSmall requests ({requests} each, 1 kB upload), concurrency 1 (ms)")
    print("| | p50 | p99 |\n|---|---|---|")
    for name, values in (("direct", direct), ("through the router", routed)):
        p50, p99 = statistics.median(values) * 1000, percentile(values, 0.99) * 1000
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")
    print(f"| added by the router | {p50_added * 1000:.2f} | {p99_added * 1000:.2f} |")
    print(f"Router CPU per request: {cpu_per_request * 1000:.2f} ms")
    print(
        f"Concurrency 16: direct {rates['direct']:.0f} req/s, through the router "
        f"{rates['router']:.0f} req/s ({rates['router'] / rates['direct']:.2f}x)"
    )
    return {"p50_added": p50_added, "cpu": cpu_per_request}


async def big_uploads(url: str, count: int, megabytes: int) -> list[int]:
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one() -> int:
            boundary = uuid.uuid4().hex

            async def body() -> AsyncIterator[bytes]:
                yield (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
                       f'{MODEL}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                       'filename="big.wav"\r\n\r\n').encode()  # fmt: skip
                chunk = b"\0" * (1 << 20)
                for _ in range(megabytes):
                    yield chunk
                yield f"\r\n--{boundary}--\r\n".encode()

            kind = f"multipart/form-data; boundary={boundary}"
            async with session.post(
                f"{url}/v1/audio/transcriptions", data=body(), headers={"content-type": kind}
            ) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one() for _ in range(count))))


def deleted_files_open(pid: int) -> int:
    """Unlinked files the process holds open: spooled uploads are "/tmp/tmpXXXX (deleted)"."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).endswith("(deleted)")
        except FileNotFoundError:  # a connection closed while we looked
            continue
    return count


def memory(count: int, megabytes: int) -> float:
    with fake_backend() as backend, router_server("--backend", backend.url) as router:
        idle = peak_rss_mb(router.process.pid)
        started = time.perf_counter()
        statuses = asyncio.run(big_uploads(router.url, count, megabytes))
        elapsed = time.perf_counter() - started
        grown = peak_rss_mb(router.process.pid) - idle
        temp_files = deleted_files_open(router.process.pid)
    print(
        f"\n{count} uploads of {megabytes} MB at once through the router: statuses "
        f"{sorted(set(statuses))}, {count * megabytes / elapsed:.0f} MB/s"
    )
    print(
        f"Router peak memory over idle: {grown:.0f} MB (idle {idle:.0f} MB); "
        f"temporary files open: {temp_files}"
    )
    return grown


def mixed_workload(seed: int, count: int) -> list[float]:
    """Audio seconds of each request: mostly 2 s clips, one in eight a 60 s file."""
    rng = random.Random(seed)
    return [60.0 if rng.random() < 0.125 else 2.0 for _ in range(count)]


async def open_loop(url: str, workload: list[float], interval: float) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def one(seconds: float, delay: float) -> None:
            await asyncio.sleep(delay)
            body, kind = form(b"\0" * int(seconds * 32_000))
            started = time.perf_counter()
            async with session.post(
                f"{url}/v1/audio/transcriptions", data=body, headers={"content-type": kind}
            ) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one(s, i * interval) for i, s in enumerate(workload)))
    return latencies


def policies(count: int) -> dict[str, float]:
    workload = mixed_workload(seed=7, count=count)
    speeds = (0.02, 0.06, 0.2)
    # Arrivals at 70% of what the three backends can do together.
    capacity = sum(1 / s for s in speeds)  # audio seconds per second
    interval = statistics.mean(workload) / (0.7 * capacity)
    p95 = {}
    for policy in ("round_robin", "least_load"):
        with ExitStack() as stack:
            backends = [stack.enter_context(fake_backend(s)) for s in speeds]
            args = [arg for b in backends for arg in ("--backend", b.url)]
            router = stack.enter_context(router_server(*args, "--routing", policy))
            latencies = asyncio.run(open_loop(router.url, workload, interval))
        p95[policy] = percentile(latencies, 0.95)
        print(f"{policy}: p50 {statistics.median(latencies):.2f} s, p95 {p95[policy]:.2f} s")
    print(f"least load p95 / round robin p95: {p95['least_load'] / p95['round_robin']:.2f}")
    return p95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--mixed-requests", type=int, default=160)
    args = parser.parse_args()
    cost = overhead(args.requests)
    grown = memory(args.uploads, args.upload_mb)
    print(f"\nMixed workload ({args.mixed_requests} requests) over backends of unequal speed")
    p95 = policies(args.mixed_requests)
    targets = [
        ("router CPU per small request <= 0.7 ms", cost["cpu"] <= 0.0007),
        ("added p50 latency at concurrency 1 <= 1 ms", cost["p50_added"] <= 0.001),
        (
            f"memory within 100 MB of idle with {args.uploads} x {args.upload_mb} MB uploads",
            grown <= 100,
        ),
        ("least load beats round robin in p95", p95["least_load"] < p95["round_robin"]),
    ]
    return report_targets(targets)


if __name__ == "__main__":
    raise SystemExit(main())
