"""How the router takes a client's faults and a backend's: two engines, one router.

    python -m benchmarks.router_faults [--routing round_robin|least_load]

1. **Uploads that hang up halfway**: three of them, then 40 ordinary requests (4 at a time).
   A hang-up is the client's fault: every request should succeed and no engine be ejected.
2. **A frozen engine** (SIGSTOP, resumed at the end): 24 requests sent while it is stopped.
   It prints how long the router took to take the engine out of rotation, how many requests
   failed, and their latency (median and worst) beside the latency before the freeze.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI
from tests.servers import RunningServer, engine_server, metric, openai_client, router_server
from tests.speech import compose, wav_bytes
from tests.uploads import hang_up_halfway

MODEL = "whisper-tiny.en"
CLIP = wav_bytes(compose([0.3, "I would like a large coffee with milk and no sugar.", 0.3]).samples)


def transcribed(client: OpenAI) -> float | None:
    """Seconds one request took, or None if it failed or heard the wrong words."""
    started = time.monotonic()
    try:
        text = client.audio.transcriptions.create(model=MODEL, file=("a.wav", CLIP)).text
    except Exception:  # any failure counts; the figure is how many
        return None
    return time.monotonic() - started if "coffee" in text.lower() else None


def aborted_uploads(router: RunningServer) -> None:
    client = openai_client(router.url, timeout=60)
    for _ in range(3):
        hang_up_halfway(router.url, MODEL, CLIP, model_first=True)
    time.sleep(1)
    with ThreadPoolExecutor(4) as pool:
        succeeded = sum(t is not None for t in pool.map(lambda _: transcribed(client), range(40)))
    ejections = metric(router, "stenostack_router_backend_ejections_total")
    client_side = metric(router, "stenostack_router_requests_total", status="499")
    print(
        f"3 uploads hung up halfway, then {succeeded}/40 requests succeeded; "
        f"ejections {ejections:g}; counted as 499 (the client's): {client_side:g}"
    )


def frozen_engine(router: RunningServer, frozen: RunningServer) -> None:
    client = openai_client(router.url, timeout=120)
    before = [t for t in (transcribed(client) for _ in range(8)) if t is not None]
    os.kill(frozen.process.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    detected: float | None = None
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(transcribed, client) for _ in range(24)]
            while detected is None and time.monotonic() - stopped < 60:
                if metric(router, "stenostack_router_backend_healthy", backend=frozen.url) == 0:
                    detected = time.monotonic() - stopped
                time.sleep(0.1)
            during = [future.result() for future in futures]
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    done = [t for t in during if t is not None]
    print(
        f"frozen engine out of rotation after "
        f"{'never (60 s)' if detected is None else f'{detected:.1f} s'}; 24 requests during "
        f"the freeze: {len(during) - len(done)} failed"
    )
    if done and before:
        median, usual = statistics.median(done), statistics.median(before)
        print(
            f"latency median {median:.2f} s (before the freeze {usual:.2f} s, "
            f"{median / usual:.1f}x), worst {max(done):.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routing", default="round_robin", choices=["round_robin", "least_load"])
    args = parser.parse_args()
    with engine_server("--model", MODEL) as first, engine_server("--model", MODEL) as second:
        backends = ["--backend", first.url, "--backend", second.url, "--routing", args.routing]
        with router_server(*backends) as router:
            aborted_uploads(router)
        with router_server(*backends) as router:
            frozen_engine(router, first)


if __name__ == "__main__":
    main()
