"""Start a real engine process on a loopback port, wait until it is ready, and reach it with
the official ``openai`` SDK."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from openai import AsyncOpenAI, NotGiven, OpenAI, not_given
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric_samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the server's ``/metrics``, by name and sorted labels."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def openai_client(
    url: str,
    *,
    api_key: str = "unused",
    timeout: float | NotGiven = not_given,
    strict: bool = False,
) -> OpenAI:
    """The official SDK pointed at the server at ``url``. It never retries, so a test sees each
    answer the server gives; ``strict`` checks every response against the SDK's types."""
    return OpenAI(
        base_url=f"{url}/v1",
        api_key=api_key,
        max_retries=0,
        timeout=timeout,
        _strict_response_validation=strict,
    )


def async_openai_client(url: str, *, api_key: str = "unused") -> AsyncOpenAI:
    """The SDK's asyncio client for the server at ``url`` (the Realtime API needs it)."""
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)


def metric(server: RunningServer, name: str, **labels: str) -> float:
    """The sum of the samples of one metric whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in server.metric_samples().items()
        if sample == name and wanted <= set(sample_labels)
    )


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def engine_server(
    *args: str,
    ready_timeout: float = 180.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """A ``stenostack serve`` process with ``args``, on a loopback port (free, or ``port``)."""
    with server_process(
        [sys.executable, "-m", "stenostack", "serve", "--log-level", "warning", *args],
        ready_timeout=ready_timeout,
        port=port,
        env=env,
    ) as server:
        yield server


@contextmanager
def server_process(
    command: list[str],
    ready_timeout: float = 180.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
    ready_status: int = 200,
) -> Iterator[RunningServer]:
    """Run ``command --host 127.0.0.1 --port P`` and wait until its ``/ready`` says 200."""
    port = port or free_port()
    log_path = Path(tempfile.mkdtemp(prefix="stenostack-")) / "server.log"
    command = [*command, "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log_file:  # the child keeps its own handle
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == ready_status:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {ready_timeout} s:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def app_server(
    app: ASGIApp, ready_timeout: float = 180.0, ready_path: str = "/ready"
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in this process, on a free loopback port; yield its URL.

    For tests that build the engine around an instrumented model; everything else uses a
    real ``stenostack serve`` process.
    """
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("in-process server did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def router_server(
    *args: str,
    ready_timeout: float = 60.0,
    env: dict[str, str] | None = None,
    ready_status: int = 200,
) -> Iterator[RunningServer]:
    """A ``stenostack router`` process with ``args``, on a free loopback port; it counts as
    started when ``/ready`` answers ``ready_status`` (503: no backend yet)."""
    with server_process(
        [sys.executable, "-m", "stenostack", "router", "--log-level", "warning", *args],
        ready_timeout=ready_timeout,
        env=env,
        ready_status=ready_status,
    ) as server:
        yield server


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    return _memory_status_mb(pid, "VmHWM")


def resident_mb(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MB."""
    return _memory_status_mb(pid, "VmRSS")


def _memory_status_mb(pid: int, field: str) -> float:
    """One of the kB figures in ``/proc/<pid>/status``, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")
