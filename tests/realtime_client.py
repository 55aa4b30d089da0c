"""A plain WebSocket client for the realtime endpoint that checks every server event
against the official SDK's ``RealtimeServerEvent`` types."""

from __future__ import annotations

import base64
import json
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.sync.client import connect
from websockets.sync.connection import Connection

# The SDK's class for each server event type.
SERVER_EVENTS: dict[str, type[BaseModel]] = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(RealtimeServerEvent)[0])
}


class RealtimeClient:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.received: list[dict[str, Any]] = []

    def send(self, kind: str, **fields: Any) -> None:
        self.connection.send(json.dumps({"type": kind, **fields}))

    def append(self, audio: bytes, chunk_bytes: int = 9600) -> None:
        """Append ``audio`` in pieces (200 ms of 24 kHz PCM16 each by default)."""
        for start in range(0, len(audio), chunk_bytes):
            piece = base64.b64encode(audio[start : start + chunk_bytes]).decode()
            self.send("input_audio_buffer.append", audio=piece)

    def recv(self, timeout: float = 60.0, sdk_types: bool = True) -> dict[str, Any]:
        """The next event; unless told otherwise, the SDK's class for its type must accept it."""
        event: dict[str, Any] = json.loads(self.connection.recv(timeout=timeout))
        if sdk_types:
            SERVER_EVENTS[event["type"]].model_validate(event)
        assert event["event_id"].startswith("event_")
        self.received.append(event)
        return event

    def error_for(self, message: str | bytes) -> dict[str, Any]:
        """Send ``message`` exactly as given (a malformed one); the ``error`` of the error
        event the server must answer it with."""
        self.connection.send(message)
        event = self.recv()
        assert event["type"] == "error", (message[:80], event)
        error: dict[str, Any] = event["error"]
        return error

    def until(self, kind: str, count: int = 1, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Events up to and including the ``count``-th event of type ``kind``."""
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        seen = 0
        while seen < count:
            events.append(self.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            seen += events[-1]["type"] == kind
        return events

    def until_closed(self, timeout: float = 30.0) -> tuple[list[dict[str, Any]], Close]:
        """Every event until the server closes the connection, and the close frame it sent."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                events.append(self.recv(timeout=max(deadline - time.monotonic(), 0.1)))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server sent no close frame"
            return events, closed.rcvd


@contextmanager
def realtime_session(
    server_url: str, query: str = "intent=transcription", **options: Any
) -> Iterator[RealtimeClient]:
    url = server_url.replace("http://", "ws://") + "/v1/realtime" + (f"?{query}" if query else "")
    with connect(url, open_timeout=30, **options) as connection:
        yield RealtimeClient(connection)
