"""Multipart forms as the official openai SDK sends them, parsed into a request.

The SDK sends lists as repeated ``key[]`` fields, mappings as ``key[sub]`` fields, booleans
as ``"true"``/``"false"`` and numbers with ``str()``. Unknown fields are ignored.
Speakers (diarization) are asked for with ``response_format=diarized_json`` as OpenAI does,
or, as this server's extension, ``diarize=true`` with a format that shows segments; the
extensions ``min_speakers`` and ``max_speakers`` bound their number.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from stenostack.audio.vad_settings import FILE_VAD, VadSettings
from stenostack.engine.diarization_lane import REFERENCES_PARAM, ReferenceClip, SpeakerRequest
from stenostack.errors import ClientDisconnected, InvalidRequest
from stenostack.models.base import Task, TranscriptionOptions
from stenostack.models.diarization.base import SpeakerCount

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
# The formats that show when each segment was said.
TIMED_FORMATS = ("srt", "verbose_json", "vtt", "diarized_json")
# The formats that show speakers when asked (diarized_json always does).
SPEAKER_FORMATS = ("text", "srt", "verbose_json", "vtt", "diarized_json")
STREAMED_FORMATS = ("json", "text", "diarized_json", "verbose_json")
GRANULARITIES = ("segment", "word")
INCLUDES = ("logprobs",)
# Bounds on the form itself: one file and a few fields.
MAX_FIELDS = 64
# A field may hold a known speaker's reference clip as a base64 data URL: 10 s of 16-bit
# 48 kHz mono WAV is 1.3 MB so.
MAX_FIELD_BYTES = 2 * 1024 * 1024
# OpenAI's bound on known speakers; and ours on the speakers a caller may ask for.
MAX_KNOWN_SPEAKERS = 4
MAX_SPEAKERS = 32
MAX_SPEAKER_NAME_CHARS = 64
# chunking_strategy is a flat object of four short fields; a bound on its text bounds the
# nesting depth too, so the JSON parser can never recurse past the interpreter's limit.
MAX_CHUNKING_STRATEGY_CHARS = 1024
# chunking_strategy's numbers and the bounds on each, checked in this order.
VAD_FIELD_BOUNDS = (
    ("threshold", 0.0, 1.0),
    ("silence_duration_ms", 0, 60_000),
    ("prefix_padding_ms", 0, 10_000),
)


@dataclass
class AudioRequest:
    """A parsed transcription or translation request."""

    file: UploadFile
    model: str
    response_format: ResponseFormat
    options: TranscriptionOptions
    granularities: frozenset[str]
    stream: bool = False
    speakers: SpeakerRequest | None = None  # None: no diarization


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequest(
            "Expected a multipart/form-data body with a 'file' field "
            f"(got content type '{content_type or 'none'}').",
            code="invalid_content_type",
        )
    try:
        return await request.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except HTTPException as exc:  # Starlette reports malformed multipart this way
        raise InvalidRequest(f"Malformed multipart body: {exc.detail}") from exc
    except ClientDisconnect:  # the client hung up mid-upload: its doing, not a server error
        raise ClientDisconnected() from None


def parse_audio_form(form: FormData, task: Task) -> AudioRequest:
    upload = form.get("file")
    if upload is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("'file' must be an uploaded file, not a text field.", param="file")
    model = _text(form, "model")
    if not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")

    response_format = _text(form, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"Unsupported response_format '{response_format}': expected one of "
            f"{', '.join(RESPONSE_FORMATS)}.",
            param="response_format",
            code="unsupported_response_format",
        )
    stream = _boolean(form, "stream")
    if stream and response_format not in STREAMED_FORMATS:
        raise InvalidRequest(
            "stream=true sends server-sent events of the text; it works with response_format "
            f"json, text, verbose_json or diarized_json, not '{response_format}'.",
            param="stream",
            code="unsupported_parameter",
        )
    speakers = _speakers(form, task, response_format, stream)

    granularities = frozenset(_list(form, "timestamp_granularities", GRANULARITIES))
    includes = frozenset(_list(form, "include", INCLUDES))
    if "word" in granularities and response_format != "verbose_json":
        raise InvalidRequest(
            "timestamp_granularities[]=word requires response_format=verbose_json.",
            param="timestamp_granularities[]",
        )
    if "logprobs" in includes and response_format not in ("json", "verbose_json"):
        raise InvalidRequest(
            "include[]=logprobs requires response_format json or verbose_json.",
            param="include[]",
        )

    options = TranscriptionOptions(
        task=task,
        language=_text(form, "language") or None,
        prompt=_text(form, "prompt") or None,
        temperature=_temperature(form),
        word_timestamps="word" in granularities,
        segment_timestamps=response_format in TIMED_FORMATS,
        logprobs="logprobs" in includes,
        vad=_chunking_strategy(form),
    )
    return AudioRequest(
        upload,
        model,
        response_format,  # type: ignore[arg-type]
        options,
        granularities,
        stream,
        speakers,
    )


def _speakers(
    form: FormData, task: Task, response_format: str, stream: bool
) -> SpeakerRequest | None:
    """What the caller asked of diarization, checked; None if speakers were not asked for."""
    asked = _boolean(form, "diarize")
    names = _texts(form, "known_speaker_names")
    references = _texts(form, "known_speaker_references")
    minimum = _speaker_number(form, "min_speakers")
    maximum = _speaker_number(form, "max_speakers")
    if response_format != "diarized_json" and not asked:
        for param, given in (
            ("known_speaker_names[]", names),
            (REFERENCES_PARAM, references),
            ("min_speakers", minimum),
            ("max_speakers", maximum),
        ):
            if given:
                raise InvalidRequest(
                    f"{param} applies to speakers: use response_format=diarized_json "
                    "(or diarize=true).",
                    param=param,
                )
        return None
    if task == "translate":
        raise InvalidRequest(
            "Translations have no speakers: diarization is for transcriptions.",
            param="response_format" if response_format == "diarized_json" else "diarize",
        )
    if response_format not in SPEAKER_FORMATS:
        raise InvalidRequest(
            f"response_format '{response_format}' shows no speakers: use diarized_json "
            "(or diarize=true with verbose_json, srt, vtt or text).",
            param="diarize",
        )
    if stream and response_format not in ("diarized_json", "verbose_json"):
        raise InvalidRequest(
            "A stream shows speakers with response_format diarized_json or verbose_json.",
            param="diarize",
        )
    if minimum and maximum and minimum > maximum:
        raise InvalidRequest(
            f"min_speakers ({minimum}) is more than max_speakers ({maximum}).",
            param="min_speakers",
        )
    return SpeakerRequest(SpeakerCount(minimum, maximum), _known_speakers(names, references))


def _known_speakers(names: list[str], references: list[str]) -> tuple[ReferenceClip, ...]:
    if len(names) != len(references):
        raise InvalidRequest(
            f"Got {len(names)} known_speaker_names[] and {len(references)} "
            "known_speaker_references[]: each known speaker needs a name and a reference clip.",
            param=REFERENCES_PARAM if names else "known_speaker_names[]",
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise InvalidRequest(
            f"At most {MAX_KNOWN_SPEAKERS} known speakers, got {len(names)}.",
            param="known_speaker_names[]",
        )
    for name in names:
        if not name or len(name) > MAX_SPEAKER_NAME_CHARS or not name.isprintable():
            raise InvalidRequest(
                f"A known speaker's name must be 1 to {MAX_SPEAKER_NAME_CHARS} printable "
                f"characters, got {name!r}.",
                param="known_speaker_names[]",
            )
    if len(set(names)) != len(names):
        raise InvalidRequest("Known speakers' names must differ.", param="known_speaker_names[]")
    return tuple(
        ReferenceClip(name, _data_url_bytes(index, reference))
        for index, (name, reference) in enumerate(zip(names, references, strict=True))
    )


def _data_url_bytes(index: int, url: str) -> bytes:
    """The bytes of a base64 data URL (``data:audio/wav;base64,...``)."""
    header, comma, payload = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        raise InvalidRequest(
            f"known_speaker_references[{index}] must be a base64 data URL of an audio clip, "
            "like 'data:audio/wav;base64,UklGR...'.",
            param=REFERENCES_PARAM,
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise InvalidRequest(
            f"known_speaker_references[{index}] holds no valid base64 data.",
            param=REFERENCES_PARAM,
        )
    return data


def _speaker_number(form: FormData, name: str) -> int | None:
    raw = _text(form, name)
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_SPEAKERS:
        raise InvalidRequest(
            f"{name} must be a whole number from 1 to {MAX_SPEAKERS}, got '{raw}'.", param=name
        )
    return int(raw)


def _texts(form: FormData, name: str) -> list[str]:
    """A list field's values as sent (``name[]`` or ``name``), never split at commas."""
    values = []
    for key in (f"{name}[]", name):
        for raw in form.getlist(key):
            if isinstance(raw, UploadFile):
                raise InvalidRequest(f"'{key}' must be a text field.", param=f"{name}[]")
            values.append(raw.strip())
    return values


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        raise InvalidRequest(f"'{name}' must be a text field, not a file.", param=name)
    return value.strip()


def _boolean(form: FormData, name: str) -> bool:
    value = (_text(form, name) or "false").lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise InvalidRequest(f"'{name}' must be true or false, got '{value}'.", param=name)


def _list(form: FormData, name: str, allowed: tuple[str, ...]) -> list[str]:
    values: list[str] = []
    for key in (f"{name}[]", name):
        for raw in form.getlist(key):
            if isinstance(raw, UploadFile):
                raise InvalidRequest(f"'{key}' must be a text field.", param=f"{name}[]")
            values += [part.strip() for part in raw.split(",") if part.strip()]
    for value in values:
        if value not in allowed:
            raise InvalidRequest(
                f"Invalid {name}[] value '{value}': expected one of {', '.join(allowed)}.",
                param=f"{name}[]",
            )
    return values


def _temperature(form: FormData) -> float:
    raw = _text(form, "temperature")
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise InvalidRequest(
            f"temperature must be a number between 0 and 1, got '{raw}'.", param="temperature"
        )
    return value


def _chunking_strategy(form: FormData) -> VadSettings:
    """``"auto"``, a JSON object, or ``chunking_strategy[key]`` fields -> VAD settings (the
    fields not given keep the file defaults)."""
    fields: dict[str, Any] = {}
    raw = _text(form, "chunking_strategy")
    if raw and len(raw) > MAX_CHUNKING_STRATEGY_CHARS:
        raise InvalidRequest(
            f"chunking_strategy is too long: at most {MAX_CHUNKING_STRATEGY_CHARS} characters.",
            param="chunking_strategy",
        )
    if raw and raw != "auto":
        try:
            decoded = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            decoded = None
        if not isinstance(decoded, dict):
            raise InvalidRequest(
                "chunking_strategy must be 'auto' or an object with type 'server_vad'.",
                param="chunking_strategy",
            )
        fields = decoded
    for key in ("type", "threshold", "prefix_padding_ms", "silence_duration_ms"):
        value = _text(form, f"chunking_strategy[{key}]")
        if value is not None:
            fields[key] = value
    if not fields:
        return FILE_VAD
    if fields.get("type") != "server_vad":
        raise InvalidRequest(
            "chunking_strategy.type must be 'server_vad'.", param="chunking_strategy"
        )
    given: dict[str, Any] = {}
    for key, low, high in VAD_FIELD_BOUNDS:
        if key in fields:
            number = _number(fields, key, low, high)
            # The threshold is a probability; the durations are whole milliseconds.
            given[key] = number if key == "threshold" else int(number)
    return dataclasses.replace(FILE_VAD, **given)


def _number(fields: dict[str, Any], key: str, low: float, high: float) -> float:
    try:
        value = float(fields[key])
    except (TypeError, ValueError):
        value = math.nan
    if not low <= value <= high:
        raise InvalidRequest(
            f"chunking_strategy.{key} must be a number between {low:g} and {high:g}.",
            param="chunking_strategy",
        )
    return value
