"""How a running engine or router treats slow, silent, lying and oversized connections.

    python -m benchmarks.connection_attacks --url http://127.0.0.1:8000 [--flood 1100]

Reports, each with a bound of ``--wait-s``: how long a connection that never sends a byte,
one that trickles its headers (slowloris) and one whose Content-Length is larger than its
body stay open; how long a 64 MB header takes to be answered, and how slow ``/health`` is
meanwhile; with ``--flood N``, what a new client gets while N silent connections are open
and how long until a new client is served again (start the server under
``prlimit --nofile=1024:1024`` to see the open-file limit's part).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from contextlib import suppress
from urllib.parse import urlsplit

import httpx


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=10)


def seconds_open(sock: socket.socket, wait_s: float, trickle: bytes = b"") -> str:
    """How long until the server closes ``sock`` (sending ``trickle`` a byte at 0.2 s)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    position = 0
    while time.monotonic() - started < wait_s:
        try:
            if position < len(trickle):
                sock.send(trickle[position : position + 1])
                position += 1
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            data = b""
        first_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        return f"{time.monotonic() - started:.1f} s" + (f" ({first_line})" if data else "")
    return f"still open after {wait_s:g} s"


def huge_header(address: tuple[str, int], url: str, wait_s: float) -> str:
    """The answer to a 64 MB header and its time; and /health's, asked meanwhile."""
    header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 << 20) + b"\r\n\r\n"
    probe: list[str] = []

    def ask_health() -> None:
        time.sleep(0.3)  # while the header arrives
        started = time.monotonic()
        status = "200" if _healthy(url, wait_s) else "no answer"
        probe.append(f"{status} in {time.monotonic() - started:.2f} s")

    sock = connect(address)
    sender = threading.Thread(target=_send_quietly, args=(sock, header), daemon=True)
    prober = threading.Thread(target=ask_health)
    started = time.monotonic()
    sender.start()
    prober.start()
    sock.settimeout(wait_s)
    try:
        answer = sock.recv(200).split(b"\r\n", 1)[0].decode("latin-1") or "closed"
    except OSError as exc:
        answer = f"no answer ({exc.__class__.__name__})"
    took = time.monotonic() - started
    prober.join()
    sock.close()
    return f"{answer} after {took:.2f} s; /health meanwhile: {probe[0]}"


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with suppress(OSError):
        sock.sendall(data)


def _healthy(url: str, wait_s: float) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=wait_s).status_code == 200
    except httpx.HTTPError:
        return False


def flood(address: tuple[str, int], url: str, count: int, wait_s: float) -> str:
    sockets = []
    try:
        for _ in range(count):
            try:
                sockets.append(connect(address))
            except OSError as exc:
                return f"connection {len(sockets) + 1} failed: {exc}"
        time.sleep(1)
        started = time.monotonic()
        try:
            status = str(httpx.get(f"{url}/health", timeout=wait_s).status_code)
        except httpx.HTTPError as exc:
            status = exc.__class__.__name__
        took = time.monotonic() - started
        while not _healthy(url, 2.0) and time.monotonic() - started < wait_s:
            time.sleep(0.5)
        served = time.monotonic() - started
        return f"a new client beside {count} silent connections: {status} after {took:.2f} s; " + (
            f"served again after {served:.1f} s" if served < wait_s else "never served"
        )
    finally:
        for sock in sockets:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--wait-s", type=float, default=60.0)
    parser.add_argument("--flood", type=int, default=0)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    lying = (
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
    )
    with connect(address) as sock:
        print("silent connection closed:", seconds_open(sock, args.wait_s))
    with connect(address) as sock:
        trickle = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000
        print("slowloris closed:", seconds_open(sock, args.wait_s, trickle))
    with connect(address) as sock:
        sock.sendall(lying)
        print("lying Content-Length answered:", seconds_open(sock, args.wait_s))
    print("64 MB header:", huge_header(address, args.url, args.wait_s))
    if args.flood:
        print(flood(address, args.url, args.flood, args.wait_s))


if __name__ == "__main__":
    main()
