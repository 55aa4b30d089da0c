"""The router with ``--workers N``: one ``/metrics`` for all of its worker processes.

Backends are FAKE engines (``tests/fake_backend.py``): what is checked is how the workers'
metrics add up, not transcription. Which worker served what is read from the files each
worker writes its own values to (prometheus_client's multiprocess layout), so a test can
tell that more than one worker served, and which one to kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from tests.servers import (
    RunningServer,
    metric,
    openai_client,
    router_server,
    server_process,
    wait_until,
)
from tests.speech import compose, wav_bytes

MODEL = "whisper-tiny.en"
REQUESTS = "stenostack_router_requests_total"
INFLIGHT = "stenostack_router_requests_inflight"
HEALTHY = "stenostack_router_backend_healthy"


@contextmanager
def fake_backend(seconds_per_audio_second: float) -> Iterator[RunningServer]:
    """A FAKE engine answering "ok" after a delay that grows with the audio, one at a time."""
    fake = Path(__file__).resolve().parent / "fake_backend.py"
    command = [sys.executable, str(fake), "--seconds-per-audio-second"]
    with server_process([*command, str(seconds_per_audio_second)], ready_timeout=30) as server:
        yield server


def transcribe(url: str, audio: bytes) -> str:
    """One transcription through the official SDK, on a connection of its own."""
    with openai_client(url, timeout=60) as client:
        return client.audio.transcriptions.create(model=MODEL, file=("a.wav", audio)).text


def worker_pids(router: RunningServer) -> list[int]:
    """The router's worker processes (not multiprocessing's resource tracker)."""
    pid = router.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def shared_dir(worker: int) -> Path:
    """The metrics directory the router's parent gave its workers."""
    for entry in Path(f"/proc/{worker}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name == b"PROMETHEUS_MULTIPROC_DIR":
            return Path(value.decode())
    raise AssertionError(f"worker {worker} has no PROMETHEUS_MULTIPROC_DIR")


def own_value(directory: Path, file_name: str, sample_name: str) -> float:
    """One worker's own value of a metric, from the file it writes (0 if none yet)."""
    path = directory / file_name
    if not path.exists():
        return 0.0
    families: Iterable[Metric] = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
    return sum(
        (
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == sample_name
        ),
        0.0,
    )


def label_sets(router: RunningServer) -> set[tuple[str, tuple[str, ...]]]:
    """Each sample's name and label names (``_created``, in-process only, left out)."""
    return {
        (name, tuple(label for label, _ in labels))
        for name, labels in router.metric_samples()
        if not name.endswith("_created")
    }


def test_every_scrape_counts_the_requests_of_all_workers() -> None:
    audio = wav_bytes(compose([1.0]).samples)
    with (
        fake_backend(0.05) as backend,
        router_server("--backend", backend.url, "--workers", "2") as router,
    ):
        pids = worker_pids(router)
        assert len(pids) == 2
        directory = shared_dir(pids[0])
        sent = 0
        served: dict[int, float] = {}
        # Connections go to whichever worker accepts first: send until both have served.
        for _ in range(10):
            with ThreadPoolExecutor(8) as pool:
                texts = list(pool.map(lambda _: transcribe(router.url, audio), range(8)))
            assert texts == ["ok"] * 8
            sent += 8
            served = {pid: own_value(directory, f"counter_{pid}.db", REQUESTS) for pid in pids}
            if all(served.values()):
                break
        assert all(served.values()), f"one worker served everything: {served}"
        assert sum(served.values()) == sent

        # Each scrape is a new connection, answered by either worker: always the whole router.
        scrapes = [metric(router, REQUESTS, backend=backend.url, status="200") for _ in range(8)]
        assert scrapes == [sent] * 8
        assert metric(router, INFLIGHT, backend=backend.url) == 0
        assert metric(router, HEALTHY, backend=backend.url) == 1
        audio_s = metric(router, "stenostack_router_audio_seconds_total", backend=backend.url)
        assert abs(audio_s - sent * len(audio) / 32_000) < 0.01 * sent
    assert not directory.exists(), "the router left its metrics directory behind"


def test_a_killed_worker_leaves_no_requests_in_flight_behind() -> None:
    # 1.5 s a request, one at a time; the health checks' short clip passes at once.
    audio = wav_bytes(compose([30.0]).samples)
    with (
        fake_backend(0.05) as backend,
        router_server("--backend", backend.url, "--workers", "2") as router,
        ThreadPoolExecutor(2) as pool,
    ):
        pids = worker_pids(router)
        directory = shared_dir(pids[0])
        pending = [pool.submit(transcribe, router.url, audio) for _ in range(2)]
        wait_until(lambda: metric(router, INFLIGHT) == 2, timeout=10, what="2 requests in flight")
        holding = [
            pid for pid in pids if own_value(directory, f"gauge_livesum_{pid}.db", INFLIGHT) > 0
        ]
        victim = holding[0]
        lost = own_value(directory, f"gauge_livesum_{victim}.db", INFLIGHT)
        os.kill(victim, signal.SIGKILL)

        answered = 0
        for future in pending:
            with contextlib.suppress(openai.APIConnectionError):  # on the killed worker
                answered += future.result() == "ok"
        assert 2 - lost <= answered < 2
        wait_until(
            lambda: victim not in worker_pids(router) and len(worker_pids(router)) == 2,
            what="a new worker in the killed one's place",
        )
        # The supervisor forgets the killed worker's gauges on a turn of its loop, which
        # pings each worker (up to 5 s apiece): slow on a loaded machine, so the default wait.
        wait_until(lambda: metric(router, INFLIGHT) == 0, what="no requests in flight")
        wait_until(lambda: metric(router, HEALTHY, backend=backend.url) == 1, timeout=10)


def test_the_same_metrics_and_labels_with_one_worker_or_several() -> None:
    audio = wav_bytes(compose([1.0]).samples)
    with fake_backend(0.0) as backend:
        seen = []
        for workers in ("1", "2"):
            with router_server("--backend", backend.url, "--workers", workers) as router:
                assert transcribe(router.url, audio) == "ok"
                with openai_client(router.url) as client, pytest.raises(openai.NotFoundError):
                    client.audio.transcriptions.create(model="none", file=("a.wav", audio))
                seen.append(label_sets(router))
        assert seen[0] == seen[1]


def test_a_backend_dropped_from_the_config_leaves_every_workers_gauges(tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    with fake_backend(0.0) as first, fake_backend(0.0) as second:
        config.write_text(f"backends: [{first.url}, {second.url}]\n")
        with router_server("--config", str(config), "--workers", "2") as router:

            def backends_shown() -> set[str]:
                """The backends with gauges in four scrapes (whichever workers answer)."""
                return {
                    dict(labels)["backend"]
                    for _ in range(4)
                    for name, labels in router.metric_samples()
                    if name in (INFLIGHT, HEALTHY)
                }

            assert transcribe(router.url, wav_bytes(compose([1.0]).samples)) == "ok"
            assert backends_shown() == {first.url, second.url}
            config.write_text(f"backends: [{first.url}]\n")
            wait_until(lambda: backends_shown() == {first.url}, what="the dropped backend gone")
            assert metric(router, HEALTHY, backend=first.url) == 1
