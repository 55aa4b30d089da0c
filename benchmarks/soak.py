"""A soak under mixed load: well-behaved clients alone, then beside attackers.

    python -m benchmarks.soak [--minutes 6] [--model whisper-tiny.en]

An engine with a router in front of it. Well-behaved clients loop over short clips through
the router, in four response formats and as server-sent events. The run has three phases
of equal length, side by side in one run:

1. **clean**: the well-behaved clients alone (the baseline);
2. **attacked**: the same clients while attackers hit engine and router directly: uploads
   that hang up halfway, slow-header (slowloris) sockets, idle sockets, stalled uploads,
   oversized headers, deeply nested JSON and Opus files that decode to ten hours;
3. **after**: the clients alone again, once the attackers stopped.

It prints the clients' p50/p95 latency and failures per phase with the attacked/clean
ratio, how the attackers' connections ended, and both processes' resident memory
(VmRSS) over time, and ends with memory after the run against idle.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import aiohttp
from tests.bombs import opus_bomb
from tests.multipart import multipart
from tests.servers import engine_server, resident_mb, router_server

from benchmarks.report import percentile, report_targets
from benchmarks.workloads import Clip, short_clips

FORMATS = ("json", "text", "srt", "verbose_json")
MEMORY_EVERY_S = 5.0


@dataclass
class MemoryLog:
    pids: dict[str, int]
    samples: list[tuple[float, str, dict[str, float]]] = field(default_factory=list)
    phase: str = "idle"
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> dict[str, float]:
        now = {name: resident_mb(pid) for name, pid in self.pids.items()}
        self.samples.append((time.monotonic(), self.phase, now))
        return now

    def run(self) -> None:
        while not self._stop.wait(MEMORY_EVERY_S):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


@dataclass
class PhaseResult:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def good_client(
    session: aiohttp.ClientSession, url: str, model: str, clips: list[Clip], seed: int,
    deadline: float, result: PhaseResult,
) -> None:  # fmt: skip
    """Short clips back to back; one request in four streamed as server-sent events."""
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        clip = rng.choice(clips)
        stream = rng.random() < 0.25
        fields = {"model": model, "response_format": rng.choice(FORMATS)}
        if stream:
            fields = {"model": model, "stream": "true"}
        body, kind = multipart([*fields.items(), ("file", ("a.wav", clip.wav))])
        started = time.perf_counter()
        try:
            async with session.post(
                f"{url}/v1/audio/transcriptions", data=body, headers={"content-type": kind}
            ) as response:
                text = await response.text()
                if response.status != 200:
                    result.failures[str(response.status)] += 1
                    continue
                if stream and "transcript.text.done" not in text:
                    result.failures["stream without done"] += 1
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            result.failures[type(exc).__name__] += 1
            continue
        result.latencies.append(time.perf_counter() - started)


# -- attackers: each opens raw connections and notes how they ended ----------------------


@dataclass
class Attack:
    name: str
    ended: Counter[str] = field(default_factory=Counter)
    lifetimes: list[float] = field(default_factory=list)


async def held_open(
    host: str, port: int, attack: Attack, first: bytes, trickle: bytes, every_s: float,
    deadline: float,
) -> None:  # fmt: skip
    """A connection that sends ``first``, then ``trickle`` every ``every_s``, until the server
    closes it (noted with its lifetime) or the phase ends; then it opens the next one."""
    while time.monotonic() < deadline:
        opened = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            attack.ended[f"connect failed: {type(exc).__name__}"] += 1
            await asyncio.sleep(1)
            continue
        try:
            if first:
                writer.write(first)
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(reader.read(65536), every_s)
                except TimeoutError:
                    if trickle:
                        writer.write(trickle)
                        await writer.drain()
                    continue
                status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else ""
                attack.ended[f"answered {status}" if status else "closed"] += 1
                attack.lifetimes.append(time.monotonic() - opened)
                break
            else:
                attack.ended["still open at phase end"] += 1
        except OSError:
            attack.ended["reset"] += 1
            attack.lifetimes.append(time.monotonic() - opened)
        finally:
            writer.close()


async def one_shot(host: str, port: int, attack: Attack, request: bytes, hang_up: bool) -> None:
    opened = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        attack.ended[type(exc).__name__] += 1
        return
    try:
        writer.write(request)
        await writer.drain()
        if hang_up:
            attack.ended["hung up"] += 1
        else:
            data = await asyncio.wait_for(reader.read(65536), 60)
            status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
            attack.ended[f"answered {status}"] += 1
            attack.lifetimes.append(time.monotonic() - opened)
    except (OSError, TimeoutError) as exc:
        attack.ended[type(exc).__name__] += 1
    finally:
        writer.close()


async def repeat(every_s: float, deadline: float, make: Callable[[], Awaitable[None]]) -> None:
    pending: set[asyncio.Task[None]] = set()
    while time.monotonic() < deadline:
        task = asyncio.ensure_future(make())
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(every_s)
    await asyncio.gather(*pending, return_exceptions=True)


def _upload_request(model: str, audio: bytes, **fields: str) -> bytes:
    """A whole transcription request, as raw bytes for a socket."""
    body, kind = multipart([("model", model), *fields.items(), ("file", ("a.wav", audio))])
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def attackers(
    targets: list[tuple[str, int]], model: str, clip: Clip, deadline: float
) -> tuple[list[Attack], list[Awaitable[None]]]:
    body, kind = multipart([("model", model), ("file", ("a.wav", clip.wav))])
    post = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    deep_request = _upload_request(model, clip.wav, chunking_strategy="[" * 30_000 + "]" * 30_000)
    bombs = [
        _upload_request(model, opus_bomb(10 * 3600, declares_length=declares))
        for declares in (True, False)
    ]
    huge_header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20) + b"\r\n\r\n"
    attacks = {
        name: Attack(name)
        for name in (
            "upload hung up halfway",
            "slowloris (a header byte every 2 s)",
            "idle socket",
            "stalled upload",
            "8 MB header",
            "chunking_strategy nested 30,000 deep",
            "Opus bomb: 10 h, declared",
            "Opus bomb: 10 h, undeclared (live WebM)",
        )
    }
    jobs: list[Awaitable[None]] = []
    for host, port in targets:
        hang_up = partial(one_shot, host, port, attacks["upload hung up halfway"])
        big_header = partial(one_shot, host, port, attacks["8 MB header"], huge_header, False)
        nested = partial(
            one_shot, host, port, attacks["chunking_strategy nested 30,000 deep"], deep_request
        )
        slowloris = partial(
            held_open, host, port, attacks["slowloris (a header byte every 2 s)"],
            b"POST /v1/audio/transcriptions HTTP/1.1\r\n", b"X", 2.0, deadline,
        )  # fmt: skip
        idle = partial(held_open, host, port, attacks["idle socket"], b"", b"", 5.0, deadline)
        stalled = partial(
            held_open, host, port, attacks["stalled upload"], post + body[:1000], b"", 5.0,
            deadline,
        )  # fmt: skip
        jobs += [
            repeat(0.5, deadline, partial(hang_up, post + body[: len(body) // 2], True)),
            repeat(5.0, deadline, big_header),
            repeat(2.0, deadline, partial(nested, False)),
            repeat(
                10.0,
                deadline,
                partial(
                    one_shot, host, port, attacks["Opus bomb: 10 h, declared"], bombs[0], False
                ),
            ),
            repeat(
                10.0,
                deadline,
                partial(
                    one_shot,
                    host,
                    port,
                    attacks["Opus bomb: 10 h, undeclared (live WebM)"],
                    bombs[1],
                    False,
                ),
            ),
            *(slowloris() for _ in range(50)),
            *(idle() for _ in range(50)),
            *(stalled() for _ in range(10)),
        ]
    return list(attacks.values()), jobs


async def phase(
    router_url: str, model: str, clips: list[Clip], clients: int, seconds: float,
    attack_targets: list[tuple[str, int]] | None,
) -> tuple[PhaseResult, list[Attack]]:  # fmt: skip
    result = PhaseResult()
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        jobs: list[Awaitable[None]] = [
            good_client(session, router_url, model, clips, seed, deadline, result)
            for seed in range(clients)
        ]
        attacks: list[Attack] = []
        if attack_targets:
            attacks, attack_jobs = attackers(attack_targets, model, clips[0], deadline)
            jobs += attack_jobs
        await asyncio.gather(*jobs)
    return result, attacks


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="the whole run")
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    clips = short_clips(12, seed=3)
    seconds = args.minutes * 60 / 3
    with (
        engine_server("--model", args.model) as engine,
        router_server("--backend", engine.url) as router,
    ):
        warm = asyncio.run(phase(router.url, args.model, clips, 1, 5, None))[0]
        assert warm.latencies, f"warm-up failed: {warm.failures}"
        memory = MemoryLog({"engine": engine.process.pid, "router": router.process.pid})
        idle = memory.sample()
        sampler = threading.Thread(target=memory.run, daemon=True)
        sampler.start()
        results: dict[str, PhaseResult] = {}
        all_attacks: list[Attack] = []
        targets = [host_port(engine.url), host_port(router.url)]
        for name in ("clean", "attacked", "after"):
            memory.phase = name
            result, attacks = asyncio.run(
                phase(
                    router.url, args.model, clips, args.clients, seconds,
                    targets if name == "attacked" else None,
                )
            )  # fmt: skip
            results[name] = result
            all_attacks += attacks
        memory.phase = "settled"
        time.sleep(10)
        settled = memory.sample()
        memory.stop()
        engine_alive = engine.process.poll() is None and router.process.poll() is None

    print(f"\nWell-behaved clients ({args.clients}, through the router), {seconds:.0f} s a phase")
    print("| phase | requests | failures | p50 s | p95 s | p95 / clean p95 |")
    print("|---|---|---|---|---|---|")
    clean_p95 = percentile(results["clean"].latencies, 0.95)
    for name, result in results.items():
        p95 = percentile(result.latencies, 0.95)
        failures = ", ".join(f"{k}: {v}" for k, v in result.failures.items()) or "0"
        p50 = statistics.median(result.latencies) if result.latencies else float("nan")
        print(
            f"| {name} | {len(result.latencies)} | {failures} | "
            f"{p50:.2f} | {p95:.2f} | {p95 / clean_p95:.2f} |"
        )
    print("\nAttackers (against engine and router), how their connections ended")
    print("| attack | endings | median lifetime s |\n|---|---|---|")
    for attack in all_attacks:
        endings = ", ".join(f"{k}: {v}" for k, v in sorted(attack.ended.items()))
        lifetime = statistics.median(attack.lifetimes) if attack.lifetimes else float("nan")
        print(f"| {attack.name} | {endings} | {lifetime:.1f} |")
    print("\nResident memory (MB) over time")
    print("| t s | phase | engine | router |\n|---|---|---|---|")
    start = memory.samples[0][0]
    for at, name, sizes in memory.samples:
        print(f"| {at - start:.0f} | {name} | {sizes['engine']:.0f} | {sizes['router']:.0f} |")
    print("\nMemory after the run, settled, against idle")
    memory_ok = True
    for process in ("engine", "router"):
        grown = settled[process] - idle[process]
        peak = max(sizes[process] for _, _, sizes in memory.samples)
        print(
            f"- {process}: idle {idle[process]:.0f} MB, peak {peak:.0f} MB, settled "
            f"{settled[process]:.0f} MB ({grown:+.0f} MB, {settled[process] / idle[process]:.2f}x)"
        )
        memory_ok = memory_ok and grown <= 100
    attacked_p95 = percentile(results["attacked"].latencies, 0.95)
    targets_met = [
        ("both processes alive", engine_alive),
        ("memory settles within 100 MB of idle", memory_ok),
        ("attacked p95 within 2x clean p95 + 1 s", attacked_p95 <= 2 * clean_p95 + 1),
        ("no failures of well-behaved clients", not any(r.failures for r in results.values())),
    ]
    return report_targets(targets_met)


if __name__ == "__main__":
    raise SystemExit(main())
