"""Server events of a realtime transcription session, shaped as the official SDK reads them.

Each builder returns the event's JSON object; :func:`new_id` makes the ``event_…``,
``item_…`` and ``sess_…`` identifiers.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from stenostack.errors import APIError
from stenostack.models.base import TokenLogprob

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def event(kind: str, **fields: Any) -> Event:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error(
    message: str,
    *,
    code: str,
    param: str | None = None,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> Event:
    return event(
        "error",
        error={
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )


def user_audio_item(item_id: str, transcript: str | None) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def item_added(item_id: str, previous_item_id: str | None) -> Event:
    return event(
        "conversation.item.added",
        previous_item_id=previous_item_id,
        item=user_audio_item(item_id, None),
    )


def item_done(item_id: str, previous_item_id: str | None, transcript: str | None) -> Event:
    return event(
        "conversation.item.done",
        previous_item_id=previous_item_id,
        item=user_audio_item(item_id, transcript),
    )


def transcription_delta(item_id: str, text: str, logprobs: list[TokenLogprob] | None) -> Event:
    fields: dict[str, Any] = {"item_id": item_id, "content_index": 0, "delta": text}
    if logprobs is not None:
        fields["logprobs"] = [asdict(item) for item in logprobs]
    return event("conversation.item.input_audio_transcription.delta", **fields)


def transcription_completed(
    item_id: str, transcript: str, seconds: float, logprobs: list[TokenLogprob] | None
) -> Event:
    fields: dict[str, Any] = {
        "item_id": item_id,
        "content_index": 0,
        "transcript": transcript,
        "usage": {"type": "duration", "seconds": round(seconds, 3)},
    }
    if logprobs is not None:
        fields["logprobs"] = [asdict(item) for item in logprobs]
    return event("conversation.item.input_audio_transcription.completed", **fields)


def transcription_failed(item_id: str, failure: APIError) -> Event:
    return event(
        "conversation.item.input_audio_transcription.failed",
        item_id=item_id,
        content_index=0,
        error={
            "type": failure.error_type,
            "code": failure.code,
            "message": failure.message,
            "param": failure.param,
        },
    )
