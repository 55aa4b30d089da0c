"""A realtime transcription session's configuration, and ``session.update`` applied to it.

The shapes are those of the official SDK's ``RealtimeTranscriptionSessionCreateRequest``:
``session.audio.input.{format, transcription, turn_detection, noise_reduction}`` and
``session.include``. As OpenAI documents, only the fields present in an update change, and
``null`` turns a feature off. An update is checked whole before any of it applies.

One extension OpenAI lacks: ``transcription.interim_results`` and ``interim_interval_ms``
ask for the text of a turn while it is still spoken (see :mod:`.interim`); ``null`` puts
either back to its default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stenostack.audio.live_input import OPENAI_PCM_RATE, LiveAudioFormat
from stenostack.audio.vad_settings import LIVE_TURN_VAD, VadSettings
from stenostack.models.base import TranscriptionOptions

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"
# How often a turn in progress is re-transcribed for interim results, by default and at
# most and least: often enough that text follows speech, not so often that one session's
# passes crowd the model.
DEFAULT_INTERIM_INTERVAL_MS = 400
MIN_INTERIM_INTERVAL_MS = 100
MAX_INTERIM_INTERVAL_MS = 5000


class SessionUpdateError(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# -- what a client may send (unknown fields are ignored, as the SDK's models allow) ------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _PcmFormat(_Lenient):
    type: Literal["audio/pcm"]
    # OpenAI takes 24 kHz only; other common rates are accepted here and resampled.
    rate: int = Field(default=OPENAI_PCM_RATE, ge=8_000, le=48_000)


class _G711Format(_Lenient):
    type: Literal["audio/pcmu", "audio/pcma"]


class _Transcription(_Lenient):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    # The extension (strict: "yes" or "400" are refused, not read as true or 400).
    interim_results: bool | None = Field(default=None, strict=True)
    interim_interval_ms: int | None = Field(
        default=None, strict=True, ge=MIN_INTERIM_INTERVAL_MS, le=MAX_INTERIM_INTERVAL_MS
    )


class _ServerVad(_Lenient):
    type: Literal["server_vad"]
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    # create_response, interrupt_response and idle_timeout_ms steer model responses, which a
    # transcription session never makes; they are accepted and have no effect.


class _SemanticVad(_Lenient):
    type: Literal["semantic_vad"]


class _AudioInput(_Lenient):
    format: Annotated[_PcmFormat | _G711Format, Field(discriminator="type")] | None = None
    transcription: _Transcription | None = None
    turn_detection: Annotated[_ServerVad | _SemanticVad, Field(discriminator="type")] | None = None
    noise_reduction: dict[str, Any] | None = None


class _Audio(_Lenient):
    input: _AudioInput | None = None


class _Session(_Lenient):
    type: Literal["transcription"]
    audio: _Audio | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None


# -- the effective configuration ---------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionSettings:
    model: str
    language: str | None = None
    prompt: str | None = None
    interim_results: bool | None = None  # None: the model's interim_results_by_default
    interim_interval_ms: int | None = None  # None: DEFAULT_INTERIM_INTERVAL_MS

    def options(self, logprobs: bool) -> TranscriptionOptions:
        """What a turn asks of the model (interim passes ask the same, so their text
        leads up to the final one)."""
        return TranscriptionOptions(
            language=self.language,
            prompt=self.prompt,
            segment_timestamps=False,  # a turn's events carry its text only
            logprobs=logprobs,
        )

    def interim_on(self, model_default: bool) -> bool:
        return model_default if self.interim_results is None else self.interim_results

    @property
    def interim_interval_s(self) -> float:
        return self._interval_ms / 1000

    @property
    def _interval_ms(self) -> int:
        if self.interim_interval_ms is None:
            return DEFAULT_INTERIM_INTERVAL_MS
        return self.interim_interval_ms

    def to_wire(self, interim_default: bool) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "model": self.model,
            "language": self.language,
            "prompt": self.prompt or "",
        }
        # The extension is shown once a client uses it, or where it is on: a client that
        # never heard of it sees OpenAI's fields only.
        explicit = self.interim_results is not None or self.interim_interval_ms is not None
        if explicit or self.interim_on(interim_default):
            wire["interim_results"] = self.interim_on(interim_default)
            wire["interim_interval_ms"] = self._interval_ms
        return wire


@dataclass(frozen=True)
class SessionConfig:
    audio_format: LiveAudioFormat
    transcription: TranscriptionSettings | None
    turns: VadSettings | None  # None: the client commits the buffer itself
    logprobs: bool = False

    @classmethod
    def default(cls, model: str) -> SessionConfig:
        return cls(LiveAudioFormat(), TranscriptionSettings(model), LIVE_TURN_VAD)

    def to_wire(self, session_id: str, interim_default: bool = False) -> dict[str, Any]:
        """The session as ``session.created`` and ``session.updated`` show it;
        ``interim_default``: the transcription model's ``interim_results_by_default``."""
        audio_format: dict[str, Any] = {"type": self.audio_format.type}
        if self.audio_format.type == "audio/pcm":
            audio_format["rate"] = self.audio_format.rate
        transcription = None
        if self.transcription is not None:
            transcription = self.transcription.to_wire(interim_default)
        turn_detection = None
        if self.turns is not None:
            turn_detection = {"type": "server_vad", **dataclasses.asdict(self.turns)}
        return {
            "type": "transcription",
            "id": session_id,
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": audio_format,
                    "transcription": transcription,
                    "turn_detection": turn_detection,
                    "noise_reduction": None,  # not offered: the effective setting is off
                }
            },
            "include": [LOGPROBS_INCLUDE] if self.logprobs else [],
        }


#: Checks a transcription choice against the served models; raises SessionUpdateError.
TranscriptionCheck = Callable[[TranscriptionSettings], TranscriptionSettings]


def apply_update(config: SessionConfig, session: Any, check: TranscriptionCheck) -> SessionConfig:
    """``config`` with the update's fields applied; raises SessionUpdateError."""
    if not isinstance(session, dict):
        raise SessionUpdateError("'session' must be an object.", "session")
    if session.get("type") != "transcription":
        raise SessionUpdateError(
            "This server serves transcription sessions only: set session.type to "
            f"'transcription' (got {session.get('type')!r}).",
            "session.type",
        )
    try:
        update = _Session.model_validate(session)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"] if not isinstance(part, int))
        raise SessionUpdateError(
            f"Invalid session.{path}: {first['msg']}.", f"session.{path}"
        ) from None

    new = config
    if update.include is not None:
        new = dataclasses.replace(new, logprobs=LOGPROBS_INCLUDE in update.include)
    audio_input = update.audio.input if update.audio else None
    if audio_input is None:
        return new
    given = audio_input.model_fields_set
    if "format" in given and audio_input.format is not None:
        rate = getattr(audio_input.format, "rate", OPENAI_PCM_RATE)
        new = dataclasses.replace(new, audio_format=LiveAudioFormat(audio_input.format.type, rate))
    if "transcription" in given:
        new = dataclasses.replace(
            new, transcription=_transcription(new.transcription, audio_input.transcription, check)
        )
    if "turn_detection" in given:
        new = dataclasses.replace(new, turns=_turns(new.turns, audio_input.turn_detection))
    return new


def _transcription(
    current: TranscriptionSettings | None,
    update: _Transcription | None,
    check: TranscriptionCheck,
) -> TranscriptionSettings | None:
    if update is None:
        return None
    fields = {name: getattr(update, name) for name in update.model_fields_set}
    base = current or TranscriptionSettings(model="")
    merged = dataclasses.replace(base, **fields)
    if not merged.model:
        raise SessionUpdateError(
            "session.audio.input.transcription.model is required.",
            "session.audio.input.transcription.model",
        )
    return check(merged)


def _turns(
    current: VadSettings | None, update: _ServerVad | _SemanticVad | None
) -> VadSettings | None:
    if update is None:
        return None
    if isinstance(update, _SemanticVad):
        raise SessionUpdateError(
            "turn_detection type 'semantic_vad' is not available here: use 'server_vad', or "
            "null to commit the buffer yourself.",
            "session.audio.input.turn_detection.type",
        )
    fields = {
        name: getattr(update, name)
        for name in ("threshold", "prefix_padding_ms", "silence_duration_ms")
        if getattr(update, name) is not None
    }
    return dataclasses.replace(current or LIVE_TURN_VAD, **fields)
