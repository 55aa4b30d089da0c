"""What large realtime messages and a client that never reads cost the engine.

    python -m benchmarks.realtime_limits [--sessions 10] [--message-mib 15.9] [--updates 20000]

One engine serving whisper-tiny.en. It prints the engine's resident memory (VmRSS, sampled
every 10 ms) at idle, at its peak and once settled, for:

1. **Large appends**: ``--sessions`` sessions at once, each sending one
   ``input_audio_buffer.append`` of ``--message-mib`` MiB (OpenAI accepts about 15 MiB),
   then clearing the buffer.
2. **A client that never reads**: one session sending ``--updates`` small
   ``session.update`` events, each answered by a ~1 kB ``session.updated`` it never reads;
   then how the session ended.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.servers import RunningServer, engine_server, resident_mb
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

MODEL = "whisper-tiny.en"
SETTLE_S = 10.0


@contextmanager
def peak_memory(pid: int) -> Iterator[Callable[[], float]]:
    """Samples ``pid``'s resident memory while the block runs; yields a reader of the peak."""
    samples = [resident_mb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            samples.append(resident_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: max(samples)
    finally:
        done.set()
        sampler.join()


def realtime_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


def large_appends(server: RunningServer, sessions: int, message_mib: float) -> None:
    audio = bytes(int(message_mib * 2**20) * 3 // 4 - 200)  # base64 grows it by 4/3
    message = json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    )
    outcomes: list[str] = []

    def one() -> None:
        try:
            with connect(realtime_url(server), max_size=None, open_timeout=30) as session:
                session.recv()
                session.send(message)
                session.send(json.dumps({"type": "input_audio_buffer.clear"}))
                while True:
                    event = json.loads(session.recv(timeout=120))
                    if event["type"] in ("input_audio_buffer.cleared", "error"):
                        outcomes.append(event["type"])
                        return
        except ConnectionClosed as closed:
            outcomes.append(f"closed {closed.rcvd.code if closed.rcvd else '-'}")

    pid = server.process.pid
    idle = resident_mb(pid)
    started = time.perf_counter()
    with peak_memory(pid) as peak:
        threads = [threading.Thread(target=one) for _ in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started
    time.sleep(SETTLE_S)
    settled = resident_mb(pid)
    print(
        f"{sessions} sessions x one {len(message) / 2**20:.1f} MiB append: {elapsed:.1f} s; "
        f"outcomes {sorted(set(outcomes))}; idle {idle:.0f} MB, peak {peak():.0f} MB "
        f"(+{peak() - idle:.0f} MB, {(peak() - idle) / (sessions * len(message) / 2**20):.1f}x "
        f"the messages), settled after {SETTLE_S:g} s {settled:.0f} MB (+{settled - idle:.0f} MB)"
    )


def slow_reader(server: RunningServer, updates: int) -> None:
    update = json.dumps({"type": "session.update", "session": {"type": "transcription"}})
    pid = server.process.pid
    idle = resident_mb(pid)
    with (
        peak_memory(pid) as peak,
        connect(realtime_url(server), max_queue=1, open_timeout=30, compression=None) as session,
    ):
        sent = 0
        try:
            for _ in range(updates):
                session.send(update)
                sent += 1
        except ConnectionClosed:
            pass
        time.sleep(3)
        received = 0
        ending = "still open after 20 s without a new event"
        try:
            while True:
                session.recv(timeout=20)
                received += 1
        except ConnectionClosed as closed:
            frame = closed.rcvd
            ending = f"closed {frame.code} '{frame.reason}'" if frame else "closed without a frame"
        except TimeoutError:
            pass
    print(
        f"a client that never reads, {sent} of {updates} updates sent: {ending} after "
        f"{received} events; idle {idle:.0f} MB, peak {peak():.0f} MB (+{peak() - idle:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--message-mib", type=float, default=15.9)
    parser.add_argument("--updates", type=int, default=20_000)
    args = parser.parse_args()
    with engine_server("--model", MODEL) as server:
        large_appends(server, args.sessions, args.message_mib)
        slow_reader(server, args.updates)


if __name__ == "__main__":
    main()
