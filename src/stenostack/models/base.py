"""The interface every speech-to-text model implements, and the transcripts models return.

The HTTP layer and the engine talk only to :class:`SpeechToTextModel`; a new model family
is a new subclass and needs no change above this package. The shape follows vLLM's
``SupportsTranscription``: a model declares its languages, its capabilities and its audio
config, validates what a request asks of it and reports usage. Each family has a loader
(:class:`ModelFactory`) that builds a model from its files.

A transcription is a :data:`TranscriptionJob`: a generator that yields one
:class:`ModelStep` at a time (encode this window, decode that one), or a :class:`StepGroup`
of independent ones (windows decoded side by side), and receives the result. The
engine's scheduler runs the pending steps of many jobs together, one batched model call per
group of steps with the same ``batch_key``; run alone, a job is an ordinary transcription.
Either way the job's own logic, and so its output, is the same.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from stenostack.audio.growing_speech import GrowingSpeech
from stenostack.audio.samples import Speech
from stenostack.audio.vad_settings import FILE_VAD, VadSettings
from stenostack.errors import InvalidRequest

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class AudioConfig:
    """What audio a model takes, and the units of the times it reports."""

    sample_rate: int
    # The longest clip the model sees in one pass, in seconds.
    max_clip_seconds: float
    # The model's frames per second: the unit of ``Segment.seek``.
    frames_per_second: int


@dataclass(frozen=True)
class Capabilities:
    """Which request options a model can honour."""

    translation: bool
    language_detection: bool
    word_timestamps: bool
    segment_timestamps: bool
    logprobs: bool


@dataclass(frozen=True)
class TranscriptionOptions:
    """What one request asks of a model, already parsed and validated."""

    task: Task = "transcribe"
    language: str | None = None  # None: detect it (multilingual models) or the model's only one
    prompt: str | None = None
    temperature: float = 0.0  # 0: greedy with the fallback ladder
    word_timestamps: bool = False
    # False when the caller wants text only (json, text, live turns): Whisper then decodes
    # without timestamp tokens, as batched pipelines do, and may cut at long pauses freely.
    segment_timestamps: bool = True
    logprobs: bool = False
    vad: VadSettings = FILE_VAD  # OpenAI's ``chunking_strategy``


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class Segment:
    id: int
    seek: int  # offset of the decoding window on the file's timeline, in the model's frames
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None  # who said it, where speakers were asked for


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
    # The segment the text comes from, on the speech's timeline (for diarization).
    segment: Segment | None = None


#: Called (on the model's thread) with each delta as soon as it is final.
DeltaSink = Callable[[TextDelta], None]


class ModelStep(ABC):
    """One request's share of one model call. Steps with equal keys run as one batch."""

    @property
    @abstractmethod
    def batch_key(self) -> Hashable:
        """Steps with the same key can share one batched call (same kind, shapes, options)."""


@dataclass(frozen=True)
class StepGroup:
    """Independent steps of one job, pending at once (windows of one file decoded side by
    side): they share calls with each other as with other jobs' steps. The job is sent
    their results as a list, in the same order."""

    steps: tuple[ModelStep, ...]


#: What a job asks for next: one step, or a group of independent ones.
StepRequest = ModelStep | StepGroup

#: Yields steps (or groups), is sent each one's result, returns the transcript.
TranscriptionJob = Generator[StepRequest, Any, Transcript]


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
        return dataclasses.replace(options, language=language)

    def usage(self, duration_s: float) -> dict[str, Any]:
        """Usage accounting reported with a transcription (OpenAI bills whisper by duration)."""
        return {"type": "duration", "seconds": math.ceil(duration_s)}

    @abstractmethod
    def start_transcription(
        self, speech: Speech, options: TranscriptionOptions, on_delta: DeltaSink | None = None
    ) -> TranscriptionJob:
        """A job that transcribes ``speech`` (at ``audio_config.sample_rate``).

        Times in the result are on the speech's own timeline; the engine maps them back to
        the uploaded file. Where segment times are wanted (``segment_timestamps``), no
        decoding window or segment may cross one of its ``breaks``.
        ``on_delta`` receives the text as it becomes final, in order, before the job
        returns.
        """

    #: Whether the model implements :meth:`start_growing_transcription`, so that a streamed
    #: file's first words need not wait for the whole file to be decoded.
    takes_growing_speech: bool = False

    def start_growing_transcription(
        self,
        speech: GrowingSpeech,
        options: TranscriptionOptions,
        on_delta: DeltaSink | None = None,
    ) -> TranscriptionJob:
        """:meth:`start_transcription`'s job, on speech whose end is still being decoded.

        The job reads it with ``speech.ready(end)``, which waits until the first ``end``
        samples are final (or the speech is complete). The engine submits the job once the
        first ``audio_config.max_clip_seconds`` are, and decoding runs far ahead of any model,
        so the wait is rare and short. The transcript must be exactly what
        :meth:`start_transcription` gives for the completed speech.
        """
        raise NotImplementedError(f"{type(self).__name__} needs the whole speech up front")

    @abstractmethod
    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        """Run steps that share one ``batch_key`` as one model call; one result per step."""

    def max_batch_size(self, step: ModelStep) -> int:
        """How many steps like ``step`` one call may take (the scheduler's batch cap)."""
        return 1

    #: How many ``run_batch`` calls the model runs at once, from as many threads.
    lanes: int = 1

    #: Whether a live session re-transcribes a turn while it is spoken (interim results)
    #: unless the client says otherwise. On only where a re-run is cheap, its cost growing
    #: with the audio: Whisper pads every pass to 30 s, so each would cost a full window.
    interim_results_by_default: bool = False

    def transcribe(self, speech: Speech, options: TranscriptionOptions) -> Transcript:
        """Run one job alone, step by step (blocking)."""
        return self.run_job(self.start_transcription(speech, options))

    def run_job(self, job: TranscriptionJob) -> Transcript:
        """Run ``job`` to its end with no other job beside it (blocking)."""
        try:
            request = next(job)
            while True:
                request = job.send(self.run_alone(request))
        except StopIteration as done:
            transcript: Transcript = done.value
            return transcript

    def run_alone(self, request: StepRequest) -> Any:
        """The result of one job's request, with no other job's steps to share calls with: a
        group's steps of one shape still share them."""
        if isinstance(request, ModelStep):
            return self.run_batch([request])[0]
        results: list[Any] = [None] * len(request.steps)
        by_key: dict[Hashable, list[int]] = {}
        for index, step in enumerate(request.steps):
            by_key.setdefault(step.batch_key, []).append(index)
        for indices in by_key.values():
            cap = self.max_batch_size(request.steps[indices[0]])
            for first in range(0, len(indices), cap):
                batch = indices[first : first + cap]
                for index, result in zip(
                    batch, self.run_batch([request.steps[i] for i in batch]), strict=True
                ):
                    results[index] = result
        return results

    def describe(self) -> dict[str, Any]:
        """Capabilities as listed by ``GET /v1/models``."""
        return {
            "transcription": True,
            **dataclasses.asdict(self.capabilities),
            "languages": sorted(self.supported_languages),
            "sample_rate": self.audio_config.sample_rate,
            "max_clip_seconds": self.audio_config.max_clip_seconds,
        }


@dataclass(frozen=True)
class Placement:
    """Where a model runs: a device and the numeric type of its weights there."""

    device: str
    compute_type: str


@dataclass(frozen=True)
class DecodingSettings:
    """How a model searches for text, as faster-whisper names it: ``beam_size`` (1: greedy)
    at temperature 0; ``best_of`` hypotheses sampled at each higher temperature."""

    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0  # beam search stops after beam_size * patience finished hypotheses
    length_penalty: float = 1.0  # hypotheses' log probabilities are divided by length ** this

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam size must be at least 1 (1: greedy), not {self.beam_size}")
        if self.best_of < 1:
            raise ValueError(f"best-of must be at least 1, not {self.best_of}")
        if not self.patience > 0:
            raise ValueError(f"patience must be above 0, not {self.patience}")
        if not 0 <= self.length_penalty < math.inf:
            raise ValueError(f"length penalty must be 0 or more, not {self.length_penalty}")


class ModelFactory(Protocol):
    """Loads one model family's files (the registry keeps one per family)."""

    def __call__(
        self,
        model_dir: Path,
        placement: Placement,
        cpu_threads: int,
        decoding: DecodingSettings,
    ) -> SpeechToTextModel: ...
