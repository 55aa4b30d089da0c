"""Whisper on CTranslate2: the first implementation of :class:`SpeechToTextModel`.

The speech is cut at pauses into pieces of at most 30 s (:mod:`.pieces`), decoded side by
side without each other's text (:mod:`stenostack.models.side_by_side`), their text handed
on in order (:mod:`stenostack.models.assembly`). A piece is walked in windows as Whisper's
own ``transcribe`` walks a file: each window is encoded once, decoded with Whisper's
temperature fallback, cut into segments at timestamp tokens (unless the caller wants text
only, see :func:`.pieces.decodes_timestamps`), and (when asked) aligned word by word; the
next window starts where the last finished segment ended, its prompt carrying the piece's
text so far.

The work is written as a job (see :mod:`stenostack.models.base`): every model call is a
step the engine may batch with other requests' steps and with the file's other pieces. A
window shorter than 30 s is encoded with an input sized to it where :mod:`.input_sizing`
allows (else padded to 30 s); if that makes the decoder loop, the window is encoded again
with full padding and decoded afresh.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections import deque
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Self

import ctranslate2
import numpy as np
import tokenizers
from faster_whisper.tokenizer import Tokenizer

from stenostack.audio.samples import Speech
from stenostack.models.assembly import TranscriptAssembly, WindowResult
from stenostack.models.base import (
    AudioConfig,
    Capabilities,
    DecodingSettings,
    DeltaSink,
    ModelStep,
    Placement,
    Segment,
    Task,
    TokenLogprob,
    TranscriptionJob,
    TranscriptionOptions,
    Word,
)
from stenostack.models.compression import compression_ratio
from stenostack.models.languages import WHISPER_LANGUAGES
from stenostack.models.pieces import Piece, PiecePlan
from stenostack.models.piecewise import PiecewiseModel
from stenostack.models.seeds import derive_seed
from stenostack.models.side_by_side import PieceJob, side_by_side
from stenostack.models.whisper.decoding import (
    COMPRESSION_RATIO_THRESHOLD,
    PROMPT_RESET_TEMPERATURE,
    DecodeAttempt,
    RawSegment,
    TokenBudget,
    average_logprob,
    best_of_failed,
    split_by_timestamps,
    temperature_ladder,
)
from stenostack.models.whisper.input_sizing import InputSizing, sized_input_allowed
from stenostack.models.whisper.pieces import WHISPER_PIECES, decodes_timestamps
from stenostack.models.whisper.seeded_sampling import SeededSampler
from stenostack.models.whisper.steps import (
    MAX_DECODER_TOKENS,
    Align,
    DetectLanguage,
    Encode,
    Encoded,
    Generate,
    Hypotheses,
    WhisperStepRunner,
    encoder_input_frames,
    token_limit,
)
from stenostack.models.whisper.units import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    POSITIONS_PER_SECOND,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    WINDOW_SECONDS,
)
from stenostack.models.whisper.words import aligned_words, token_jump_times, token_logprobs

log = logging.getLogger(__name__)

MAX_PROMPT_TOKENS = MAX_DECODER_TOKENS // 2 - 1
# Previous text is trimmed to one of these lengths, so that windows of different requests
# have prompts of the same shape and can be decoded in one batch.
PROMPT_LENGTH_BUCKETS = (0, 8, 16, 32, 64, 128, MAX_PROMPT_TOKENS)
# A tail shorter than this after the last window holds no word worth an encoder pass.
MIN_TAIL_FRAMES = 10

# The most pieces of one file decoded side by side: their decode steps share one call.
PIECES_SIDE_BY_SIDE = 16

# What a model built directly (not by the registry, which applies --beam-size) decodes with.
GREEDY = DecodingSettings(beam_size=1)

WindowDecode = Generator[ModelStep, Any, DecodeAttempt | None]

# CPU threads are split into this many lanes (each running its own batch) once there are at
# least two: CTranslate2 uses one thread per batch better than two. On 2 cores, 30 s windows
# encoded two at a time, a thread each, took 0.381 s apiece (whisper-base) and 0.165 s
# (tiny.en) against 0.463 s and 0.200 s one at a time on both threads.
CPU_LANES = 2


def cpu_lanes(threads: int) -> int:
    """How many batches a model on ``threads`` CPU threads runs at once."""
    return CPU_LANES if threads >= CPU_LANES else 1


def trim_to_bucket(tokens: Sequence[int]) -> list[int]:
    """The most recent tokens, as many as the largest bucket that fits."""
    kept = max(b for b in PROMPT_LENGTH_BUCKETS if b <= len(tokens))
    return list(tokens[len(tokens) - kept :])


class WhisperCT2(PiecewiseModel):
    """A Whisper model converted to CTranslate2, on CPU or CUDA."""

    audio_config = AudioConfig(
        sample_rate=SAMPLE_RATE,
        max_clip_seconds=float(WINDOW_SECONDS),
        frames_per_second=FRAMES_PER_SECOND,
    )

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        decoding: DecodingSettings = GREEDY,
        input_sizing: InputSizing = InputSizing.BY_RULE,
    ) -> None:
        self.model_dir = model_dir
        # Which windows under 30 s are encoded with an input sized to them.
        self.input_sizing = input_sizing
        # Windows whose shortened input made the decoder loop, so they were padded instead.
        self.padded_after_loop = 0
        self.device = device
        self.compute_type = compute_type
        self.decoding = decoding

        threads = cpu_threads or len(os.sched_getaffinity(0))
        self.lanes = cpu_lanes(threads) if device == "cpu" else 1

        def load_model(lanes: int = 1) -> ctranslate2.models.Whisper:
            return ctranslate2.models.Whisper(
                str(model_dir),
                device=device,
                compute_type=compute_type,
                inter_threads=lanes,
                intra_threads=max(threads // lanes, 1) if device == "cpu" else cpu_threads,
            )

        self._model = load_model(self.lanes)
        self._hf_tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizers: dict[tuple[Task, str], Tokenizer] = {}
        self.multilingual: bool = bool(self._model.is_multilingual)
        self._runner = WhisperStepRunner(
            self._model, on_gpu=device == "cuda", sampler=SeededSampler(load_model)
        )
        if self.multilingual:
            self.supported_languages = {
                code: name
                for code, name in WHISPER_LANGUAGES.items()
                if self._hf_tokenizer.token_to_id(f"<|{code}|>") is not None
            }
        else:
            self.supported_languages = {"en": WHISPER_LANGUAGES["en"]}
        self.capabilities = Capabilities(
            translation=self.multilingual,
            language_detection=self.multilingual,
            word_timestamps=True,
            segment_timestamps=True,
            logprobs=True,
        )

    @classmethod
    def load(
        cls,
        model_dir: Path,
        placement: Placement,
        cpu_threads: int,
        decoding: DecodingSettings,
    ) -> Self:
        """The registry's loader for CTranslate2 Whisper directories."""
        return cls(
            model_dir,
            device=placement.device,
            compute_type=placement.compute_type,
            cpu_threads=cpu_threads,
            decoding=decoding,
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "decoding": dataclasses.asdict(self.decoding)}

    # -- the model interface -------------------------------------------------------------

    def _transcription(
        self,
        speech_until: Callable[[int], Speech],
        is_final: Callable[[int], bool],
        options: TranscriptionOptions,
        on_delta: DeltaSink | None,
    ) -> TranscriptionJob:
        """The job; ``speech_until(end)`` is the speech with at least its first ``end``
        samples final (all of it, once it is complete), ``is_final(end)`` whether it would
        return at once. The speech is cut into pieces (:mod:`.pieces`) decoded side by side."""
        language = options.language if self.multilingual else "en"
        user_prompt = self._prompt_tokens(options.prompt)
        head = speech_until((WINDOW_FRAMES + 1) * HOP_LENGTH)
        timestamps = decodes_timestamps(options, len(head.samples) // HOP_LENGTH)
        plan = PiecePlan(speech_until, is_final, WHISPER_PIECES, keep_breaks=timestamps)
        first = plan.next(wait=True)
        first_encoded: tuple[Encoded, int] | None = None
        if first is not None and language is None:
            # The language is detected once, on the first window, before pieces fan out.
            frames = min(WINDOW_FRAMES, first.end - first.start)
            window = first.speech.samples[first.start * HOP_LENGTH : first.end * HOP_LENGTH]
            input_frames = self._input_frames(frames, language)
            encoded: Encoded = yield Encode(window, input_frames)
            first_encoded = (encoded, input_frames)
            language = self._pick_language((yield DetectLanguage(encoded)))
        assert language is not None
        transcript = TranscriptAssembly(language, options, on_delta, POSITIONS_PER_SECOND)

        def next_piece(wait: bool, index: int) -> PieceJob | None:
            nonlocal first, first_encoded
            piece: Piece | None = first or plan.next(wait)
            first = None
            if piece is None:
                return None
            reused, first_encoded = first_encoded, None
            emit = functools.partial(transcript.add_window, index)
            return self._piece(piece, language, user_prompt, options, timestamps, emit, reused)

        yield from side_by_side(next_piece, transcript.finish, PIECES_SIDE_BY_SIDE)
        duration = len(speech_until(np.iinfo(np.int64).max).samples) / SAMPLE_RATE
        return transcript.result(duration, len(user_prompt))

    def _piece(
        self,
        piece: Piece,
        language: str,
        user_prompt: list[int],
        options: TranscriptionOptions,
        timestamps: bool,
        emit: Callable[[WindowResult], None],
        first_encoded: tuple[Encoded, int] | None,
    ) -> PieceJob:
        """One piece, window by window, as Whisper's ``transcribe`` walks a file: each
        window starts where the last finished segment ended, its prompt carrying the piece's
        text so far. Each window's result goes to ``emit`` as soon as it is decoded."""
        audio = piece.speech.samples
        tokenizer = self._tokenizer(options.task, language)
        history = list(user_prompt)
        seek = piece.start
        while seek < piece.end:
            window_frames = min(WINDOW_FRAMES, piece.end - seek)
            if window_frames < MIN_TAIL_FRAMES:
                break
            start = seek * HOP_LENGTH
            window = audio[start : start + window_frames * HOP_LENGTH]
            if first_encoded is not None:
                (encoded, input_frames), first_encoded = first_encoded, None
            else:
                input_frames = self._input_frames(window_frames, language)
                encoded = yield Encode(window, input_frames)
            # The user's prompt is kept whole; decoded text is trimmed to a shared length.
            context = history if history == user_prompt else trim_to_bucket(history)
            prompt = self._build_prompt(tokenizer, context, timestamps)
            budget = TokenBudget.for_window(token_limit(window_frames, len(prompt)))
            # What a sampled decode of this window draws from: the same for the same request.
            window_id = derive_seed(window.tobytes(), seek.to_bytes(8, "little"))
            attempt = yield from self._decode(
                encoded,
                prompt,
                tokenizer,
                options.temperature,
                window_frames,
                input_frames,
                budget,
                window_id,
            )
            if attempt is None:
                log.debug("window at %d looped on a %d-frame input; padding", seek, input_frames)
                self.padded_after_loop += 1
                encoded = yield Encode(window, WINDOW_FRAMES)
                attempt = yield from self._decode(
                    encoded,
                    prompt,
                    tokenizer,
                    options.temperature,
                    window_frames,
                    WINDOW_FRAMES,
                    budget,
                    window_id,
                )
                assert attempt is not None  # a full-length window never counts as looping
            if attempt.is_silence:
                seek += window_frames
                continue
            split = split_by_timestamps(attempt.tokens, tokenizer.timestamp_begin, window_frames)
            window_segments = [
                self._segment(i, seek, raw, attempt, tokenizer)
                for i, raw in enumerate(split.segments)
            ]
            window_logprobs: list[TokenLogprob] = []
            if window_segments and (options.word_timestamps or options.logprobs):
                text_tokens = [token for raw in split.segments for token in raw.tokens]
                alignment = yield Align(
                    encoded, tuple(tokenizer.sot_sequence), text_tokens, window_frames
                )
                window_logprobs = self._attach_words(
                    alignment, tokenizer, split.segments, window_segments, seek
                )
            emit(WindowResult(window_segments, window_logprobs))
            history += [token for raw in split.segments for token in raw.tokens]
            if attempt.temperature > PROMPT_RESET_TEMPERATURE:
                history = []
            seek += split.advance_frames

    def _input_frames(self, window_frames: int, language: str | None) -> int:
        """The encoder input for a window: sized to it where the rule allows, else 30 s."""
        if sized_input_allowed(self.input_sizing, self.multilingual, language):
            return encoder_input_frames(window_frames)
        return WINDOW_FRAMES

    def run_batch(self, steps: Sequence[ModelStep]) -> list[Any]:
        return self._runner.run(steps)

    def max_batch_size(self, step: ModelStep) -> int:
        return self._runner.max_batch_size(step)

    # -- steps of one window -------------------------------------------------------------

    def _pick_language(self, ranked: list[tuple[str, float]]) -> str:
        for token, _probability in ranked:
            code = token.strip("<|>")
            if code in self.supported_languages:
                return code
        return "en"

    def _decode(
        self,
        encoded: Encoded,
        prompt: list[int],
        tokenizer: Tokenizer,
        temperature: float,
        window_frames: int,
        input_frames: int,
        budget: TokenBudget,
        window_id: int,
    ) -> WindowDecode:
        """Decode with Whisper's temperature fallback, redoing only this window, within the
        window's token ``budget``. With earlier text in the prompt, one greedy attempt also
        goes without it: right after an attempt that loops (the prompt is the likely cause,
        as with a prompt that repeats itself), else once every temperature has failed.

        A sampled try draws from a seed made of ``window_id`` (the window's audio and place),
        its prompt (language, task, earlier text) and its temperature.

        Returns None when a shortened input made the decoder loop (too many tokens for the
        audio, or text that compresses like a loop): the caller pads the window to 30 s.
        """
        shortened = input_frames < WINDOW_FRAMES
        plain = prompt[prompt.index(tokenizer.sot) :]
        # Each try: whether it keeps the earlier text, and its temperature.
        pending = deque((True, t) for t in temperature_ladder(temperature))
        if plain != prompt:
            pending.append((False, 0.0))
        attempts: list[DecodeAttempt] = []
        while pending:
            with_context, t = pending.popleft()
            try_prompt = prompt if with_context else plain
            limit = token_limit(window_frames, len(try_prompt))
            if attempts and with_context:
                # Expect this temperature to decode as much as the last, per hypothesis.
                expected = len(attempts[-1].tokens) * (1 if t == 0 else self.decoding.best_of)
                if not budget.allows(expected):
                    continue
            seed = derive_seed(
                window_id.to_bytes(8, "little"),
                np.asarray(try_prompt, dtype=np.int64).tobytes(),
                repr(t).encode(),
            )
            hypotheses: Hypotheses = yield Generate(
                encoded,
                try_prompt,
                try_prompt.index(tokenizer.sot),
                t,
                limit,
                self.decoding,
                seed,
            )
            budget.spend(sum(len(sequence) for sequence in hypotheses.sequences))
            attempt = self._attempt(hypotheses, tokenizer, t, self.decoding.length_penalty)
            looping = (
                len(attempt.tokens) >= limit
                or attempt.compression_ratio > COMPRESSION_RATIO_THRESHOLD
            )
            if shortened and looping:
                return None
            attempts.append(attempt)
            if not attempt.needs_fallback:
                return attempt
            if looping and with_context and pending and not pending[-1][0]:
                pending.appendleft(pending.pop())  # the plain try goes next
        return best_of_failed(attempts)

    @staticmethod
    def _attempt(
        hypotheses: Hypotheses, tokenizer: Tokenizer, temperature: float, length_penalty: float
    ) -> DecodeAttempt:
        best = int(np.argmax(hypotheses.scores))
        tokens = hypotheses.sequences[best]
        text = tokenizer.decode([tok for tok in tokens if tok < tokenizer.timestamp_begin])
        avg_logprob = average_logprob(hypotheses.scores[best], len(tokens), length_penalty)
        return DecodeAttempt(
            tokens=tokens,
            text=text,
            temperature=temperature,
            avg_logprob=avg_logprob,
            compression_ratio=compression_ratio(text),
            no_speech_prob=hypotheses.no_speech_prob,
        )

    def _segment(
        self, index: int, seek: int, raw: RawSegment, attempt: DecodeAttempt, tokenizer: Tokenizer
    ) -> Segment:
        offset = seek / FRAMES_PER_SECOND
        return Segment(
            id=index,
            seek=seek,
            start=round(offset + raw.start, 3),
            end=round(offset + raw.end, 3),
            text=tokenizer.decode(raw.tokens),
            tokens=list(raw.tokens),
            temperature=attempt.temperature,
            avg_logprob=attempt.avg_logprob,
            compression_ratio=attempt.compression_ratio,
            no_speech_prob=attempt.no_speech_prob,
        )

    def _attach_words(
        self,
        alignment: Any,
        tokenizer: Tokenizer,
        raw_segments: list[RawSegment],
        segments: list[Segment],
        seek: int,
    ) -> list[TokenLogprob]:
        """Attach timed words to ``segments``; return the window's token log probabilities."""
        text_tokens = [token for raw in raw_segments for token in raw.tokens]
        probs: list[float] = list(alignment.text_token_probs)
        words, word_tokens = tokenizer.split_to_word_tokens([*text_tokens, tokenizer.eot])
        words, word_tokens = words[:-1], word_tokens[:-1]  # drop the end-of-text "word"
        jumps = token_jump_times(alignment.alignments)
        boundaries = np.cumsum([len(raw.tokens) for raw in raw_segments])
        offset = seek / FRAMES_PER_SECOND
        for word in aligned_words(words, word_tokens, jumps, probs):
            segment = segments[int(np.searchsorted(boundaries, word.first_token, side="right"))]
            start = min(max(offset + word.start, segment.start), segment.end)
            end = min(max(offset + word.end, start), segment.end)
            segment.words.append(Word(word.text, round(start, 3), round(end, 3), word.probability))
        return token_logprobs(text_tokens, probs, lambda token: tokenizer.decode([token]))

    # -- helpers -------------------------------------------------------------------------

    def _tokenizer(self, task: Task, language: str) -> Tokenizer:
        """This model's tokenizer for a task and language, made once."""
        key = (task, language)
        if key not in self._tokenizers:
            self._tokenizers[key] = (
                Tokenizer(self._hf_tokenizer, multilingual=True, task=task, language=language)
                if self.multilingual
                else Tokenizer(self._hf_tokenizer, multilingual=False)
            )
        return self._tokenizers[key]

    @staticmethod
    def _build_prompt(
        tokenizer: Tokenizer, previous_tokens: Sequence[int], timestamps: bool
    ) -> list[int]:
        """The decoder prompt for one window: earlier text, then the start sequence (and
        ``<|notimestamps|>`` for text only)."""
        prompt: list[int] = []
        if previous_tokens:
            prompt = [tokenizer.sot_prev, *previous_tokens[-MAX_PROMPT_TOKENS:]]
        return (
            prompt
            + list(tokenizer.sot_sequence)
            + ([] if timestamps else [tokenizer.no_timestamps])
        )

    def _prompt_tokens(self, prompt: str | None) -> list[int]:
        if not prompt or not prompt.strip():
            return []
        tokens = self._hf_tokenizer.encode(" " + prompt.strip(), add_special_tokens=False).ids
        return list(tokens[-MAX_PROMPT_TOKENS:])
