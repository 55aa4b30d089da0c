"""The interface every speech-to-text model implements, and the transcripts models return.

The HTTP layer and the engine talk only to :class:`SpeechToTextModel`; a new model family
is a new subclass and needs no change above this package. The shape follows vLLM's
``SupportsTranscription``: a model declares its languages, its capabilities and its audio
config, validates what a request asks of it, builds its own decoder prompt and reports usage.

A transcription is a :data:`TranscriptionJob`: a generator that yields one
:class:`ModelStep` at a time (encode this window, decode that one) and receives its
result. The engine's scheduler runs the pending steps of many jobs together, one batched
model call per group of steps with the same ``batch_key``; run alone, a job is an ordinary
sequential transcription. Either way the job's own logic, and so its output, is the same.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stenostack.errors import InvalidRequest

Task = Literal["transcribe", "translate"]
Int16Audio = npt.NDArray[np.int16]


@dataclass(frozen=True)
class AudioConfig:
    """What audio a model takes and how longer audio is cut for it."""

    sample_rate: int = 16_000
    # The longest clip the model sees in one pass, in seconds.
    max_clip_seconds: float = 30.0
    # How audio longer than one clip is prepared: "vad" drops long silences with voice
    # activity detection before the model walks the speech window by window.
    long_audio: Literal["vad", "none"] = "vad"


@dataclass(frozen=True)
class Capabilities:
    """Which request options a model can honour."""

    translation: bool
    language_detection: bool
    word_timestamps: bool
    segment_timestamps: bool
    logprobs: bool


@dataclass(frozen=True)
class VadSettings:
    """Voice activity detection knobs (OpenAI's ``chunking_strategy`` maps onto these)."""

    threshold: float = 0.5
    min_silence_ms: int = 2000
    speech_pad_ms: int = 400


@dataclass(frozen=True)
class TranscriptionOptions:
    """What one request asks of a model, already parsed and validated."""

    task: Task = "transcribe"
    language: str | None = None  # None: detect it (multilingual models) or the model's only one
    prompt: str | None = None
    temperature: float = 0.0  # 0: greedy with the fallback ladder
    word_timestamps: bool = False
    logprobs: bool = False
    vad: VadSettings = field(default_factory=VadSettings)


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class Segment:
    id: int
    seek: int  # offset of the decoding window, in 10 ms frames on the file's timeline
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]


@dataclass(frozen=True)
class TokenUsage:
    """What one transcription consumed and produced, in model tokens."""

    audio_tokens: int  # encoder positions for the audio the model heard
    text_tokens: int  # the caller's prompt
    output_tokens: int  # decoded text

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's ``usage`` object of type ``tokens``."""
        input_tokens = self.audio_tokens + self.text_tokens
        return {
            "type": "tokens",
            "input_tokens": input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": input_tokens + self.output_tokens,
            "input_token_details": {
                "audio_tokens": self.audio_tokens,
                "text_tokens": self.text_tokens,
            },
        }


@dataclass
class Transcript:
    text: str
    language: str  # ISO 639-1 code
    duration: float  # seconds of audio in the uploaded file
    segments: list[Segment]
    logprobs: list[TokenLogprob] | None = None
    tokens: TokenUsage = TokenUsage(0, 0, 0)

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]


@dataclass(frozen=True)
class TextDelta:
    """A piece of a transcript as soon as it is final, for streaming responses.

    A job's deltas, joined in order, are exactly its transcript's ``text``.
    """

    text: str
    logprobs: list[TokenLogprob] | None = None


#: Called (on the model's thread) with each delta as soon as it is final.
DeltaSink = Callable[[TextDelta], None]


class ModelStep(ABC):
    """One request's share of one model call. Steps with equal keys run as one batch."""

    @property
    @abstractmethod
    def batch_key(self) -> Hashable:
        """Steps with the same key can share one batched call (same kind, shapes, options)."""


#: Yields steps, is sent each step's result, returns the transcript.
TranscriptionJob = Generator[ModelStep, Any, Transcript]


class SpeechToTextModel(ABC):
    """A loaded model that turns audio into a transcript."""

    #: ISO 639-1 code -> language name, for every language the model transcribes.
    supported_languages: Mapping[str, str]
    capabilities: Capabilities
    audio_config: AudioConfig

    def validate_language(self, language: str | None) -> str | None:
        """Normalise a requested language code, or reject it with a 400 naming ``language``."""
        if language is None:
            return None
        code = language.strip().lower()
        if code not in self.supported_languages:
            raise InvalidRequest(
                f"Unsupported language '{language}' for this model. Supported languages "
                f"(ISO 639-1): {', '.join(sorted(self.supported_languages))}.",
                param="language",
                code="unsupported_language",
            )
        return code

    def validate(self, options: TranscriptionOptions) -> TranscriptionOptions:
        """Reject options the model cannot honour; return them with the language normalised."""
        caps = self.capabilities
        if options.task == "translate" and not caps.translation:
            raise InvalidRequest(
                "This model cannot translate: it is English-only. Use a multilingual model.",
                param="model",
                code="translation_unsupported",
            )
        if options.word_timestamps and not caps.word_timestamps:
            raise InvalidRequest(
                "This model cannot produce word timestamps.",
                param="timestamp_granularities[]",
                code="unsupported_parameter",
            )
        if options.logprobs and not caps.logprobs:
            raise InvalidRequest(
                "This model cannot return token log probabilities.",
                param="include[]",
                code="unsupported_parameter",
            )
        language = self.validate_language(options.language)
        if language is None and not caps.language_detection and len(self.supported_languages) > 1:
            raise InvalidRequest(
                "This model cannot detect the language: pass 'language'.", param="language"
            )
        return TranscriptionOptions(
            task=options.task,
            language=language,
            prompt=options.prompt,
            temperature=options.temperature,
            word_timestamps=options.word_timestamps,
            logprobs=options.logprobs,
            vad=options.vad,
        )

    def usage(self, duration_s: float) -> dict[str, Any]:
        """Usage accounting reported with a transcription (OpenAI bills whisper by duration)."""
        return {"type": "duration", "seconds": math.ceil(duration_s)}

    @abstractmethod
    def build_prompt(
        self, options: TranscriptionOptions, language: str, previous_tokens: Sequence[int]
    ) -> list[int]:
        """The decoder prompt for one window of audio."""

    @abstractmethod
    def start_transcription(
        self,
        audio: Int16Audio,
        options: TranscriptionOptions,
        breaks: Sequence[int] = (),
        on_delta: DeltaSink | None = None,
    ) -> TranscriptionJob:
        """A job that transcribes speech audio at ``audio_config.sample_rate``.

        Times in the result are on ``audio``'s own timeline; the engine maps them back to
        the uploaded file when it removed silences first. ``breaks`` are sample positions
        where a long pause was cut out: no decoding window or segment may cross one, so no
        segment spans the pause on the file's timeline. ``on_delta`` receives the text as
        it becomes final, in order, before the job returns.
        """

    @abstractmethod
    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        """Run steps that share one ``batch_key`` as one model call; one result per step."""

    def max_batch_size(self, step: ModelStep) -> int:
        """How many steps like ``step`` one call may take (the scheduler's batch cap)."""
        return 1

    def transcribe(
        self, audio: Int16Audio, options: TranscriptionOptions, breaks: Sequence[int] = ()
    ) -> Transcript:
        """Run one job alone, step by step (blocking)."""
        job = self.start_transcription(audio, options, breaks)
        try:
            step = next(job)
            while True:
                step = job.send(self.run_batch([step])[0])
        except StopIteration as done:
            transcript: Transcript = done.value
            return transcript

    def describe(self) -> dict[str, Any]:
        """Capabilities as listed by ``GET /v1/models``."""
        caps = self.capabilities
        return {
            "transcription": True,
            "translation": caps.translation,
            "language_detection": caps.language_detection,
            "word_timestamps": caps.word_timestamps,
            "segment_timestamps": caps.segment_timestamps,
            "logprobs": caps.logprobs,
            "languages": sorted(self.supported_languages),
            "sample_rate": self.audio_config.sample_rate,
            "max_clip_seconds": self.audio_config.max_clip_seconds,
        }
