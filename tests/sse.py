"""Reading server-sent events off the wire, as a strict client would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    data: str
    at: float  # seconds since the request was sent

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def frames(response: httpx.Response, started: float) -> Iterator[Frame]:
    """The ``data:`` frames of an event stream; anything else in it fails the test."""
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Frame("\n".join(data), time.monotonic() - started)
            data = []
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        else:
            assert line.startswith(":"), f"unexpected line in the event stream: {line!r}"
    assert not data, "the stream ended inside an event"
