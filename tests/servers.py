"""Start a real engine process on a loopback port and wait until it is ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


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


@contextmanager
def engine_server(*args: str, ready_timeout: float = 180.0) -> Iterator[RunningServer]:
    """A ``stenostack serve`` process with ``args``, on a free loopback port."""
    with server_process(
        [sys.executable, "-m", "stenostack", "serve", "--log-level", "warning", *args],
        ready_timeout=ready_timeout,
    ) as server:
        yield server


@contextmanager
def server_process(command: list[str], ready_timeout: float = 180.0) -> Iterator[RunningServer]:
    """Run ``command --host 127.0.0.1 --port P`` and wait until its ``/ready`` says 200."""
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="stenostack-")) / "server.log"
    command = [*command, "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log_file:  # the child keeps its own handle
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ}
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {ready_timeout} s:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
