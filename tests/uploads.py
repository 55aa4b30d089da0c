"""Uploads to a server's transcription endpoint for tests and benchmarks: a plain form post,
timed (how long the server took to answer, whatever it answered), and raw ones on a socket
(an upload that hangs up halfway)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx

from tests.multipart import multipart
from tests.servers import RunningServer


def timed_transcription(
    server: RunningServer, model: str, name: str, data: bytes, *, timeout: float, **fields: str
) -> tuple[httpx.Response, float]:
    """``data`` sent as the file ``name`` for ``model``, with any other form ``fields``;
    the response and the seconds it took."""
    started = time.perf_counter()
    response = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": (name, data)},
        data={"model": model, **fields},
        timeout=timeout,
    )
    return response, time.perf_counter() - started


def raw_request(url: str, body: bytes, content_type: str) -> socket.socket:
    """A connection that has sent the request's headers (announcing all of ``body``)."""
    address = urlsplit(url)
    connection = socket.create_connection((address.hostname, address.port), timeout=30)
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(head.encode())
    return connection


def hang_up_halfway(url: str, model: str, clip: bytes, *, model_first: bool) -> None:
    """Send half a multipart upload, then close the connection. With the model first the
    router has already begun streaming it to a backend; with the file first (the SDK's
    order) it is still reading ahead to find the model."""
    fields: list[tuple[str, str | tuple[str, bytes]]] = [
        ("model", model),
        ("file", ("a.wav", clip)),
    ]
    body, content_type = multipart(fields if model_first else fields[::-1])
    with raw_request(url, body, content_type) as connection:
        connection.sendall(body[: len(body) // 2])
        time.sleep(0.3)  # the router reads it and, with the model known, sends it upstream
