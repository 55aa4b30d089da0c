"""Whisper's model calls as batchable steps, and the runner that batches them.

Each step is one request's share of one CTranslate2 call. Steps batch together only when
CTranslate2 allows it: the same encoder length (it has no padding mask), for ``generate``
the same prompt shape (``<|startoftranscript|>`` at one position, one prompt length) and
the same search (greedy, or beam search with one beam size, patience and length penalty),
for ``align`` one start sequence. A sampled decode runs alone, with its own seed
(:mod:`.seeded_sampling`), so that what it samples never depends on other requests.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper.feature_extractor import FeatureExtractor

from stenostack.audio.samples import Int16Audio, to_float32
from stenostack.models.base import DecodingSettings, ModelStep
from stenostack.models.whisper.seeded_sampling import SeededSampler
from stenostack.models.whisper.units import FRAMES_PER_SECOND, HOP_LENGTH, WINDOW_FRAMES

MAX_DECODER_TOKENS = 448

StepT = TypeVar("StepT", bound=ModelStep)

#: The encoder's output for one window: [encoder positions, model width].
Encoded = npt.NDArray[np.floating[Any]]


# -- short work stays short ----------------------------------------------------------------

# A window shorter than 30 s is encoded with an input sized to it, rounded up to these steps
# so that windows of different requests share a shape and batch together.
INPUT_STEP_FRAMES = 500
# Whisper loops (repeats the last sentence to the token limit) when the input ends right
# after the speech; this much trailing silence keeps it on track.
TRAILING_SILENCE_FRAMES = 300
# The most text tokens a window may decode, per second of its audio, plus a margin: far
# above real speech (about 4 a second, timestamps included), far below a loop. Whatever
# the prompt, one decode of a window costs at most this.
MAX_TEXT_TOKENS_PER_SECOND = 12
TOKEN_LIMIT_MARGIN = 24


def encoder_input_frames(content_frames: int) -> int:
    """The encoder input length, in mel frames, for a window with this much audio."""
    needed = content_frames + TRAILING_SILENCE_FRAMES
    return min(math.ceil(needed / INPUT_STEP_FRAMES) * INPUT_STEP_FRAMES, WINDOW_FRAMES)


def token_limit(content_frames: int, prompt_length: int) -> int:
    """How many tokens a window may decode: what its audio could hold (more is a loop, on
    a shortened input, or the tail of one, on a full one), and what the decoder has room for."""
    seconds = content_frames / FRAMES_PER_SECOND
    rate_limit = TOKEN_LIMIT_MARGIN + math.ceil(seconds * MAX_TEXT_TOKENS_PER_SECOND)
    return min(MAX_DECODER_TOKENS - prompt_length, rate_limit)


# -- the steps -----------------------------------------------------------------------------


@dataclass(eq=False)
class Encode(ModelStep):
    """Log-mel features of ``samples``, padded with zeros to ``input_frames``, encoded."""

    samples: Int16Audio
    input_frames: int

    @property
    def batch_key(self) -> Hashable:
        return ("encode", self.input_frames)


@dataclass(eq=False)
class DetectLanguage(ModelStep):
    encoded: Encoded

    @property
    def batch_key(self) -> Hashable:
        return ("detect_language", self.encoded.shape)


@dataclass(eq=False)
class Generate(ModelStep):
    """Decode one window from ``prompt`` at one temperature: at 0 by beam search (greedy
    with a beam of 1), above it by sampling ``decoding.best_of`` hypotheses from ``seed``."""

    encoded: Encoded
    prompt: list[int]
    sot_index: int
    temperature: float
    max_new_tokens: int
    decoding: DecodingSettings
    seed: int = 0  # what a sampled decode draws from; unused at temperature 0

    @property
    def sampled(self) -> bool:
        return self.temperature > 0

    @property
    def batch_key(self) -> Hashable:
        if self.sampled:
            return ("generate", "sampled", id(self))  # alone: see the module's docstring
        search = (self.decoding.beam_size, self.decoding.patience, self.decoding.length_penalty)
        shape = (self.encoded.shape, self.sot_index, len(self.prompt))
        return ("generate", shape, search)


@dataclass(eq=False)
class Align(ModelStep):
    """Cross-attention alignment of decoded text tokens with the window's audio frames."""

    encoded: Encoded
    start_sequence: tuple[int, ...]
    text_tokens: list[int]
    num_frames: int

    @property
    def batch_key(self) -> Hashable:
        # CTranslate2 pads a batch's texts to one length, and the padding shifts the
        # per-token normalisation of the attention weights (word times moved by 20 ms in
        # tests). Only texts of one length share a call, so timings never depend on batching.
        shape = (self.encoded.shape, len(self.text_tokens))
        return ("align", shape, self.start_sequence)


@dataclass
class Hypotheses:
    """What ``generate`` returns for one window."""

    sequences: list[list[int]]
    # CTranslate2's log probabilities, each divided by its length ** length_penalty
    scores: list[float]
    no_speech_prob: float


# -- running them --------------------------------------------------------------------------


class WhisperStepRunner:
    """Runs a batch of same-key steps as one CTranslate2 call."""

    def __init__(
        self, model: ctranslate2.models.Whisper, on_gpu: bool, sampler: SeededSampler
    ) -> None:
        self._model = model
        self._sampler = sampler
        self._features = FeatureExtractor(feature_size=model.n_mels)
        self._on_gpu = on_gpu

    def max_batch_size(self, step: ModelStep) -> int:
        if isinstance(step, Encode):
            # On a CPU the encoder gains nothing from batching (measured on 2 cores: two
            # 20 s inputs take 2.6x one, four take 7x), so windows are encoded one by one.
            return 16 if self._on_gpu else 1
        if isinstance(step, Align):
            return 16 if self._on_gpu else 8
        if isinstance(step, Generate) and step.sampled:
            return 1  # never waits for company it cannot have
        # On a CPU, 8 leaves the rest of 16 pieces to the second lane: a 9.5-minute file
        # (whisper-base) took 12.3 s with decoding calls of up to 8, 13.8 s with up to 16.
        return 32 if self._on_gpu else 8

    def run(self, steps: Sequence[ModelStep]) -> list[Any]:
        first = steps[0]
        if isinstance(first, Encode):
            return self._encode([_as(Encode, s) for s in steps])
        if isinstance(first, DetectLanguage):
            return self._detect_language([_as(DetectLanguage, s) for s in steps])
        if isinstance(first, Generate):
            return self._generate([_as(Generate, s) for s in steps])
        if isinstance(first, Align):
            return self._align([_as(Align, s) for s in steps])
        raise TypeError(f"not a Whisper step: {first!r}")

    def _encode(self, steps: list[Encode]) -> list[Encoded]:
        frames = steps[0].input_frames
        # Features past the audio are zeros, as Whisper's and faster-whisper's transcribe
        # pad a window: the features of silence instead cost words (7.2 against 8.5 % WER
        # in English, 14.0 against 18.6 % in Spanish on whisper-base, see input_sizing.py).
        # Only the audio itself goes through the STFT.
        mels = np.zeros((len(steps), self._features.mel_filters.shape[0], frames), dtype=np.float32)
        for i, step in enumerate(steps):
            audio = to_float32(step.samples[: frames * HOP_LENGTH])
            content = min(len(audio) // HOP_LENGTH, frames)
            mels[i, :, :content] = self._features(audio, padding=HOP_LENGTH)[:, :content]
        encoded = np.asarray(
            self._model.encode(ctranslate2.StorageView.from_array(mels), to_cpu=True)
        )
        return [encoded[i] for i in range(len(steps))]

    def _detect_language(self, steps: list[DetectLanguage]) -> list[list[tuple[str, float]]]:
        ranked: list[list[tuple[str, float]]] = self._model.detect_language(
            _stack(s.encoded for s in steps)
        )
        return ranked

    def _generate(self, steps: list[Generate]) -> list[Hypotheses]:
        first = steps[0]
        # One length limit per call: the largest any step allows. A step that needs less
        # checks its own limit on what comes back.
        max_length = len(first.prompt) + max(s.max_new_tokens for s in steps)
        options: dict[str, Any] = {
            "length_penalty": first.decoding.length_penalty,
            "max_length": min(max_length, MAX_DECODER_TOKENS),
            "return_scores": True,
            "return_no_speech_prob": True,
            "suppress_blank": True,
            "suppress_tokens": [-1],
        }
        features = _stack(s.encoded for s in steps)
        prompts = [s.prompt for s in steps]
        if first.sampled:
            (step,) = steps  # a sampled decode is never batched
            results = self._sampler.generate(
                step.seed,
                features,
                prompts,
                beam_size=1,
                num_hypotheses=step.decoding.best_of,
                sampling_topk=0,
                sampling_temperature=step.temperature,
                **options,
            )
        else:
            results = self._model.generate(
                features,
                prompts,
                beam_size=first.decoding.beam_size,
                patience=first.decoding.patience,
                **options,
            )
        return [
            Hypotheses(
                sequences=[list(seq) for seq in result.sequences_ids],
                scores=list(result.scores),
                no_speech_prob=result.no_speech_prob,
            )
            for result in results
        ]

    def _align(self, steps: list[Align]) -> list[Any]:
        alignments: list[Any] = self._model.align(
            _stack(s.encoded for s in steps),
            list(steps[0].start_sequence),
            [s.text_tokens for s in steps],
            [s.num_frames for s in steps],
        )
        return alignments


def _stack(arrays: Any) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(list(arrays))))


def _as(kind: type[StepT], step: ModelStep) -> StepT:
    if not isinstance(step, kind):
        raise TypeError(f"a batch mixes step kinds: {type(step).__name__} with {kind.__name__}")
    return step
