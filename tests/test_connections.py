"""Connection hygiene on the engine and the router, attacked with raw sockets: slow and
silent connections are closed, stalled and lying bodies answered 408 (their temporary files
gone), huge headers 431, connections past the cap 503; and meanwhile a normal client is
served promptly."""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.servers import (
    RunningServer,
    engine_server,
    metric,
    openai_client,
    router_server,
    server_process,
    wait_until,
)
from tests.texts import COFFEE_ORDER
from tests.wer import word_error_rate

MODEL = "whisper-tiny.en"
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
KEEP_ALIVE_TIMEOUT_S = 2.0
LIMIT_FLAGS = (
    "--header-timeout-s", str(HEADER_TIMEOUT_S),
    "--body-timeout-s", str(BODY_TIMEOUT_S),
    "--keep-alive-timeout-s", str(KEEP_ALIVE_TIMEOUT_S),
)  # fmt: skip
# A timeout of 2 s must end between these bounds after it starts (a slow, shared machine).
EARLIEST_S, LATEST_S = 1.5, 8.0
# Spooled to disk by both servers (python-multipart keeps up to 1 MB in memory).
SPOOLED_UPLOAD_BYTES = 3_000_000
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningServer]:
    with engine_server("--model", MODEL, *LIMIT_FLAGS) as server:
        yield server


@pytest.fixture(scope="module")
def router(engine: RunningServer) -> Iterator[RunningServer]:
    with router_server("--backend", engine.url, *LIMIT_FLAGS) as server:
        yield server


@pytest.fixture(params=["engine", "router"])
def server(request: pytest.FixtureRequest) -> RunningServer:
    found: RunningServer = request.getfixturevalue(request.param)
    return found


def connect(server: RunningServer) -> socket.socket:
    address = urlsplit(server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    return sock


def seconds_until_closed(sock: socket.socket, limit_s: float = 30.0) -> float:
    """Wait until the server closes ``sock`` (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def read_response(sock: socket.socket, limit_s: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from ``sock``: status, headers (lower-case names) and body."""
    sock.settimeout(limit_s)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += piece
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(":", 1) for line in header_lines)
    }
    while len(body) < int(headers.get("content-length", "0")):
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return int(status_line.split()[1]), headers, body


def error_code(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return str(error["code"])


def open_temp_files(server: RunningServer) -> int:
    """Files the server process holds open in the temp directory that are already unlinked:
    its spooled uploads."""
    count = 0
    for fd in Path(f"/proc/{server.process.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        count += target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)")
    return count


def upload_head(content_length: int, file_first: bytes) -> bytes:
    """A transcription request's head and the start of a multipart body whose file comes
    first, as the SDK sends it."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + file_first
    )
    return (
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: " + str(content_length).encode() + b"\r\n\r\n" + body
    )


def transcribe(server: RunningServer, clip: bytes) -> tuple[str, float]:
    started = time.monotonic()
    text = (
        openai_client(server.url, timeout=60)
        .audio.transcriptions.create(model=MODEL, file=("a.wav", clip))
        .text
    )
    return text, time.monotonic() - started


def test_a_connection_that_never_sends_a_byte_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        assert EARLIEST_S <= seconds_until_closed(sock) <= LATEST_S


def test_slowloris_headers_are_cut_off_at_the_header_timeout(server: RunningServer) -> None:
    trickle = b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 1000
    with connect(server) as sock:
        started = time.monotonic()
        for byte in trickle:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable and not sock.recv(1024):
                break
        closed_after = time.monotonic() - started
    assert EARLIEST_S <= closed_after <= LATEST_S


def test_an_idle_kept_alive_connection_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert status == 200
        assert headers.get("connection") != "close"
        assert EARLIEST_S <= seconds_until_closed(sock) <= LATEST_S


def test_a_stalled_upload_is_answered_408_and_its_temp_file_is_gone(
    server: RunningServer,
) -> None:
    before = open_temp_files(server)
    with connect(server) as sock:
        sock.sendall(upload_head(2 * SPOOLED_UPLOAD_BYTES, b"\0" * SPOOLED_UPLOAD_BYTES))
        wait_until(lambda: open_temp_files(server) > before, 10, "the upload to be spooled")
        started = time.monotonic()
        status, headers, body = read_response(sock)
        answered_after = time.monotonic() - started
        assert status == 408
        assert error_code(body) == "request_timeout"
        assert headers["connection"] == "close"
        assert answered_after <= LATEST_S
        assert seconds_until_closed(sock) < 5
    wait_until(lambda: open_temp_files(server) <= before, 10, "the spooled upload to go")


def test_an_aborted_upload_leaves_no_temp_file(server: RunningServer) -> None:
    before = open_temp_files(server)
    with connect(server) as sock:
        sock.sendall(upload_head(2 * SPOOLED_UPLOAD_BYTES, b"\0" * SPOOLED_UPLOAD_BYTES))
        wait_until(lambda: open_temp_files(server) > before, 10, "the upload to be spooled")
    # Gone at once, not at the body timeout.
    wait_until(lambda: open_temp_files(server) <= before, BODY_TIMEOUT_S / 2, "the spool to go")


def test_a_lying_content_length_is_answered_408(server: RunningServer, clip: bytes) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(upload_head(len(clip) + 10_000, clip))  # the body ends early
        status, _, body = read_response(sock)
        assert status == 408
        assert error_code(body) == "request_timeout"
        assert EARLIEST_S <= time.monotonic() - started <= LATEST_S


def test_the_engine_records_a_stalled_body_as_the_clients_408(engine: RunningServer) -> None:
    def timeouts() -> float:
        return metric(engine, "stenostack_request_errors_total", status="408")

    before = timeouts()
    with connect(engine) as sock:
        sock.sendall(upload_head(100_000, b"\0" * 1000))
        assert read_response(sock)[0] == 408
    wait_until(lambda: timeouts() == before + 1, 5, "the 408 in the metrics")
    assert "Traceback" not in engine.log()


def huge_header(size: int) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send ``data``; the server may close the connection first, as it should."""
    with suppress(OSError):
        sock.sendall(data)


def test_huge_headers_are_answered_431_at_once_and_the_server_keeps_serving(
    server: RunningServer,
) -> None:
    header = huge_header(64 * 1024 * 1024)
    sockets = [connect(server) for _ in range(4)]
    senders = [threading.Thread(target=send_quietly, args=(s, header)) for s in sockets]
    started = time.monotonic()
    for sender in senders:
        sender.start()
    try:
        for sock in sockets:
            status, headers, body = read_response(sock)
            assert status == 431
            assert error_code(body) == "request_headers_too_large"
            assert headers["connection"] == "close"
        answered_after = time.monotonic() - started
        probe_started = time.monotonic()
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        probe_s = time.monotonic() - probe_started
    finally:
        for sock in sockets:
            sock.close()
        for sender in senders:
            sender.join(timeout=30)
    assert answered_after < 3
    assert probe_s < 1


def test_headers_just_under_the_limit_are_served(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(huge_header(60 * 1024))
        assert read_response(sock)[0] == 200


@contextmanager
def low_file_limit_server(command: str, *args: str) -> Iterator[RunningServer]:
    """A server started with an open-file soft limit of 256 (the hard one untouched) and
    ``--max-connections`` :data:`MAX_CONNECTIONS`."""
    with server_process(
        ["prlimit", "--nofile=256:", "--", sys.executable, "-m", "stenostack", command,
         "--log-level", "warning", "--header-timeout-s", "60",
         "--max-connections", str(MAX_CONNECTIONS), *args],
        ready_timeout=180,
    ) as server:  # fmt: skip
        yield server


@pytest.fixture(params=["engine", "router"])
def capped(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    if request.param == "engine":
        with low_file_limit_server("serve", "--model", MODEL) as server:
            yield server
    else:
        engine: RunningServer = request.getfixturevalue("engine")
        with low_file_limit_server("router", "--backend", engine.url) as server:
            yield server


def open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


def test_past_max_connections_a_new_one_gets_503_while_open_ones_are_served(
    capped: RunningServer, clip: bytes
) -> None:
    soft, hard = open_file_limits(capped.process.pid)
    assert soft == hard > 256  # raised at start-up

    existing = connect(capped)
    existing.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    assert read_response(existing)[0] == 200
    # httpx's /ready probes have left; fill every other slot with a silent connection.
    idle = [connect(capped) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        time.sleep(0.5)  # accepted
        with connect(capped) as refused:
            started = time.monotonic()
            refused.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            status, headers, body = read_response(refused)
            assert time.monotonic() - started < 1
            assert status == 503
            assert error_code(body) == "service_unavailable"
            assert headers["connection"] == "close"
            assert "retry-after" in headers
        existing.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(existing)[0] == 200
    finally:
        for sock in idle:
            sock.close()
        existing.close()
    # Their slots freed, new clients are served again.
    text, _ = transcribe(capped, clip)
    assert word_error_rate(COFFEE_ORDER, text) <= 0.2


class SocketFlood:
    """``idle`` connections that never send a byte and ``slow`` ones that send a request
    line and then one header byte at a time, each opened again as soon as the server
    closes it, until stopped."""

    def __init__(self, server: RunningServer, idle: int, slow: int) -> None:
        self.server = server
        self.kinds = [False] * idle + [True] * slow  # whether each one trickles
        self.sockets: dict[socket.socket, bool] = {}
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SocketFlood:
        for slow in self.kinds:
            self._open(slow)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for sock in self.sockets:
            sock.close()

    def _open(self, slow: bool) -> None:
        sock = connect(self.server)
        if slow:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        self.sockets[sock] = slow

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select(list(self.sockets), [], [], 0.2)
            ended = set()
            for sock in readable:
                try:
                    if not sock.recv(65536):
                        ended.add(sock)
                except OSError:
                    ended.add(sock)
            for sock, slow in list(self.sockets.items()):
                if slow and sock not in ended:
                    try:
                        sock.send(b"a")
                    except OSError:
                        ended.add(sock)
            for sock in ended:
                slow = self.sockets.pop(sock)
                sock.close()
                self.closed_by_server += 1
                self._open(slow)


def test_a_client_is_served_promptly_beside_hundreds_of_idle_and_slow_connections(
    server: RunningServer, clip: bytes
) -> None:
    _, alone_s = transcribe(server, clip)
    with SocketFlood(server, idle=120, slow=120) as flood, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: transcribe(server, clip), range(4)))
        # The server keeps cutting them off: none of them holds a slot for long.
        wait_until(lambda: flood.closed_by_server >= 240, 20, "the flood's sockets closed")
    for text, took_s in results:
        assert word_error_rate(COFFEE_ORDER, text) <= 0.2
        assert took_s < alone_s + 5
