"""Client messages of a realtime session, parsed and checked before any of them is used.

Anything a client can put in a message is answered with an ``error`` event naming what was
wrong: a binary frame, text that is not a JSON object with a string ``type``, nesting deeper
than any event has, or a string that cannot be sent back as UTF-8 (a lone surrogate such as
``"\\ud800"``, which JSON allows but would break every event that echoes it).
"""

from __future__ import annotations

import binascii
import json
from typing import Any

# No client event nests deeper than this (session.update reaches five levels).
MAX_NESTING = 16
# Base64 is decoded this many characters at a time (a multiple of 8, so each piece holds
# whole 1- and 2-byte samples): binascii holds the GIL, and a 16 MiB append decoded at once
# would stall the event loop for ~100 ms.
BASE64_PIECE_CHARS = 1 << 20


class ClientEventError(Exception):
    """A client event the session cannot use; answered with an ``error`` event."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


def parse_client_event(text: str | None) -> dict[str, Any]:
    """The event in one WebSocket message (``None``: a binary one), or ClientEventError."""
    if text is None:
        raise ClientEventError(
            "Binary messages are not accepted: send each event as a JSON text message "
            "(audio goes base64-encoded in input_audio_buffer.append).",
            "invalid_event",
        )
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ClientEventError("The message is not valid JSON.", "invalid_json") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise ClientEventError(
            "Each message must be a JSON object with a string 'type'.", "invalid_event", "type"
        )
    _check_values(payload)
    return payload


def _check_values(payload: dict[str, Any]) -> None:
    """Walk the event (without recursion, whatever its depth) checking nesting and text."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_NESTING:
            raise ClientEventError(
                f"The event nests deeper than {MAX_NESTING} levels.", "invalid_event"
            )
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if text.isascii():  # the common case, and all base64 audio: nothing to check
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ClientEventError(
            "The event holds a lone UTF-16 surrogate (such as \\ud800), which is not text: "
            "send valid Unicode.",
            "invalid_value",
        ) from None


def decode_audio(text: str) -> list[bytes]:
    """The bytes of base64 ``audio``, in pieces, or ClientEventError (nothing decoded is
    used unless all of it is valid)."""
    pieces: list[bytes] = []
    for start in range(0, len(text), BASE64_PIECE_CHARS):
        piece = text[start : start + BASE64_PIECE_CHARS]
        last = start + BASE64_PIECE_CHARS >= len(text)
        try:
            if not last and piece.endswith("="):  # padding only at the very end
                raise ValueError("padding before the end")
            pieces.append(binascii.a2b_base64(piece, strict_mode=True))
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "'audio' is not valid base64.", "invalid_value", "audio"
            ) from None
    return pieces
