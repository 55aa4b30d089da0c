"""Whisper on CTranslate2: the first implementation of :class:`SpeechToTextModel`.

A transcription walks the audio in 30 s windows. Each window is encoded once, decoded with
Whisper's temperature fallback, cut into segments at timestamp tokens, and (when asked)
aligned word by word. The next window starts where the last finished segment ended, and
its prompt carries the text decoded so far, as in Whisper's own ``transcribe``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import tokenizers
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

from stenostack.models.base import (
    AudioConfig,
    Capabilities,
    Int16Audio,
    Segment,
    SpeechToTextModel,
    Task,
    TokenLogprob,
    Transcript,
    TranscriptionOptions,
    Word,
)
from stenostack.models.languages import NO_SPACE_LANGUAGES, WHISPER_LANGUAGES
from stenostack.models.whisper.decoding import (
    PROMPT_RESET_TEMPERATURE,
    DecodeAttempt,
    RawSegment,
    best_of_failed,
    compression_ratio,
    split_by_timestamps,
    temperature_ladder,
)
from stenostack.models.whisper.words import aligned_words, token_jump_times, token_logprobs

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # samples per mel frame (10 ms)
WINDOW_FRAMES = 3000  # 30 s
WINDOW_SAMPLES = WINDOW_FRAMES * HOP_LENGTH
MAX_DECODER_TOKENS = 448
MAX_PROMPT_TOKENS = MAX_DECODER_TOKENS // 2 - 1
SAMPLING_BEST_OF = 5
# A tail shorter than this after the last window holds no word worth a 30 s encoder pass.
MIN_TAIL_FRAMES = 10


class WhisperCT2(SpeechToTextModel):
    """A Whisper model converted to CTranslate2, on CPU or CUDA."""

    audio_config = AudioConfig(sample_rate=SAMPLE_RATE, max_clip_seconds=30.0, long_audio="vad")

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
    ) -> None:
        self.model_dir = model_dir
        self.device = device
        self.compute_type = compute_type
        self._model = ctranslate2.models.Whisper(
            str(model_dir), device=device, compute_type=compute_type, intra_threads=cpu_threads
        )
        self._hf_tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.multilingual: bool = bool(self._model.is_multilingual)
        self._features = FeatureExtractor(feature_size=self._model.n_mels)
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

    # -- the model interface -------------------------------------------------------------

    def build_prompt(
        self, options: TranscriptionOptions, language: str, previous_tokens: Sequence[int]
    ) -> list[int]:
        tokenizer = self._tokenizer(options.task, language)
        prompt: list[int] = []
        if previous_tokens:
            prompt = [tokenizer.sot_prev, *previous_tokens[-MAX_PROMPT_TOKENS:]]
        return prompt + list(tokenizer.sot_sequence)

    def transcribe(
        self, audio: Int16Audio, options: TranscriptionOptions, breaks: Sequence[int] = ()
    ) -> Transcript:
        total_frames = math.ceil(len(audio) / HOP_LENGTH)
        break_frames = sorted(sample // HOP_LENGTH for sample in breaks)
        language = options.language if self.multilingual else "en"
        history = self._prompt_tokens(options.prompt)
        segments: list[Segment] = []
        logprobs: list[TokenLogprob] = []
        seek = 0
        while seek < total_frames:
            next_break = next((b for b in break_frames if b > seek), total_frames)
            window_frames = min(WINDOW_FRAMES, next_break - seek)
            if window_frames < MIN_TAIL_FRAMES:
                seek += window_frames
                continue
            start = seek * HOP_LENGTH
            encoded = self._encode(audio[start : start + window_frames * HOP_LENGTH])
            if language is None:
                language = self._detect_language(encoded)
            tokenizer = self._tokenizer(options.task, language)
            prompt = self.build_prompt(options, language, history)
            attempt = self._decode(encoded, prompt, tokenizer, options.temperature)
            if attempt.is_silence:
                seek += window_frames
                continue
            split = split_by_timestamps(attempt.tokens, tokenizer.timestamp_begin, window_frames)
            window_segments = [
                self._segment(len(segments) + i, seek, raw, attempt, tokenizer)
                for i, raw in enumerate(split.segments)
            ]
            if window_segments and (options.word_timestamps or options.logprobs):
                logprobs += self._align(
                    encoded, tokenizer, split.segments, window_segments, seek, window_frames
                )
            segments += window_segments
            history += [token for raw in split.segments for token in raw.tokens]
            if attempt.temperature > PROMPT_RESET_TEMPERATURE:
                history = []
            seek += split.advance_frames

        separator = "" if language in NO_SPACE_LANGUAGES else " "
        text = separator.join(s.text.strip() for s in segments if s.text.strip())
        return Transcript(
            text=text,
            language=language or "en",
            duration=len(audio) / SAMPLE_RATE,
            segments=segments,
            logprobs=logprobs if options.logprobs else None,
        )

    # -- steps of one window -------------------------------------------------------------

    def _encode(self, samples: Int16Audio) -> ctranslate2.StorageView:
        waveform = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        waveform[: len(samples)] = samples.astype(np.float32) / 32768.0
        mel = self._features(waveform, padding=0)[:, :WINDOW_FRAMES]
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
        return self._model.encode(features, to_cpu=False)

    def _detect_language(self, encoded: ctranslate2.StorageView) -> str:
        ranked: list[tuple[str, float]] = self._model.detect_language(encoded)[0]
        for token, _probability in ranked:
            code = token.strip("<|>")
            if code in self.supported_languages:
                return code
        return "en"

    def _decode(
        self,
        encoded: ctranslate2.StorageView,
        prompt: list[int],
        tokenizer: Tokenizer,
        temperature: float,
    ) -> DecodeAttempt:
        attempts = []
        for t in temperature_ladder(temperature):
            sampling: dict[str, Any] = (
                {}
                if t == 0
                else {
                    "sampling_topk": 0,
                    "sampling_temperature": t,
                    "num_hypotheses": SAMPLING_BEST_OF,
                }
            )
            result = self._model.generate(
                encoded,
                [prompt],
                beam_size=1,
                max_length=MAX_DECODER_TOKENS,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=[-1],
                **sampling,
            )[0]
            best = int(np.argmax(result.scores))
            tokens: list[int] = list(result.sequences_ids[best])
            text = tokenizer.decode([tok for tok in tokens if tok < tokenizer.timestamp_begin])
            # CTranslate2 scores are normalised by length; Whisper averages over length + 1.
            avg_logprob = result.scores[best] * len(tokens) / (len(tokens) + 1)
            attempt = DecodeAttempt(
                tokens=tokens,
                text=text,
                temperature=t,
                avg_logprob=avg_logprob,
                compression_ratio=compression_ratio(text),
                no_speech_prob=result.no_speech_prob,
            )
            attempts.append(attempt)
            if not attempt.needs_fallback:
                return attempt
        return best_of_failed(attempts)

    def _segment(
        self, index: int, seek: int, raw: RawSegment, attempt: DecodeAttempt, tokenizer: Tokenizer
    ) -> Segment:
        offset = seek / 100
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

    def _align(
        self,
        encoded: ctranslate2.StorageView,
        tokenizer: Tokenizer,
        raw_segments: list[RawSegment],
        segments: list[Segment],
        seek: int,
        window_frames: int,
    ) -> list[TokenLogprob]:
        """Attach words to ``segments``; return the window's token log probabilities."""
        text_tokens = [token for raw in raw_segments for token in raw.tokens]
        alignment = self._model.align(
            encoded, list(tokenizer.sot_sequence), [text_tokens], window_frames
        )[0]
        probs: list[float] = list(alignment.text_token_probs)
        words, word_tokens = tokenizer.split_to_word_tokens([*text_tokens, tokenizer.eot])
        words, word_tokens = words[:-1], word_tokens[:-1]  # drop the end-of-text "word"
        jumps = token_jump_times(alignment.alignments)
        boundaries = np.cumsum([len(raw.tokens) for raw in raw_segments])
        offset = seek / 100
        for word in aligned_words(words, word_tokens, jumps, probs):
            segment = segments[int(np.searchsorted(boundaries, word.first_token, side="right"))]
            start = min(max(offset + word.start, segment.start), segment.end)
            end = min(max(offset + word.end, start), segment.end)
            segment.words.append(Word(word.text, round(start, 3), round(end, 3), word.probability))
        return token_logprobs(text_tokens, probs, lambda token: tokenizer.decode([token]))

    # -- helpers -------------------------------------------------------------------------

    @lru_cache(maxsize=256)  # noqa: B019 - one cache per model instance is what we want
    def _tokenizer(self, task: Task, language: str) -> Tokenizer:
        if not self.multilingual:
            return Tokenizer(self._hf_tokenizer, multilingual=False)
        return Tokenizer(self._hf_tokenizer, multilingual=True, task=task, language=language)

    def _prompt_tokens(self, prompt: str | None) -> list[int]:
        if not prompt or not prompt.strip():
            return []
        tokens = self._hf_tokenizer.encode(" " + prompt.strip(), add_special_tokens=False).ids
        return list(tokens[-MAX_PROMPT_TOKENS:])
