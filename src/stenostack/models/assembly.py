"""A transcript put together from pieces that finish in any order, streamed in order.

Family-neutral: a piece is decoded in one or more windows (Whisper walks a piece window by
window; Moonshine hears a piece whole), and each window's segments are handed on here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stenostack.models.base import (
    DeltaSink,
    Segment,
    TextDelta,
    TokenLogprob,
    TokenUsage,
    Transcript,
    TranscriptionOptions,
)
from stenostack.models.languages import NO_SPACE_LANGUAGES


@dataclass
class WindowResult:
    """What one decoded window adds: its segments (numbered from 0) and, when asked for,
    the log probabilities of their tokens."""

    segments: list[Segment]
    logprobs: list[TokenLogprob]


class TranscriptAssembly:
    """Takes each piece's windows as they are decoded, pieces finishing in any order, and
    hands their text on as deltas as soon as every piece before theirs has finished, so
    that deltas arrive in the transcript's order."""

    def __init__(
        self,
        language: str,
        options: TranscriptionOptions,
        on_delta: DeltaSink | None,
        audio_tokens_per_second: float,
    ) -> None:
        self._language = language
        # The model's encoder positions per second of audio: its usage's audio tokens.
        self._audio_tokens_per_second = audio_tokens_per_second
        self._options = options
        self._on_delta = on_delta
        self._separator = "" if language in NO_SPACE_LANGUAGES else " "
        self._waiting: dict[int, list[WindowResult]] = {}  # windows of later pieces
        self._finished: set[int] = set()
        self._current = 0  # the piece whose windows are handed on as they come
        self.text = ""
        self.segments: list[Segment] = []
        self.logprobs: list[TokenLogprob] = []

    def add_window(self, piece: int, window: WindowResult) -> None:
        if piece == self._current:
            self._take(window)
        else:
            self._waiting.setdefault(piece, []).append(window)

    def finish(self, piece: int) -> None:
        self._finished.add(piece)
        while self._current in self._finished:
            self._current += 1
            for window in self._waiting.pop(self._current, []):
                self._take(window)

    def _take(self, window: WindowResult) -> None:
        position = 0
        for segment in window.segments:
            segment.id = len(self.segments)
            self.segments.append(segment)
            segment_logprobs = window.logprobs[position : position + len(segment.tokens)]
            position += len(segment.tokens)
            piece = segment.text.strip()
            if not piece:
                continue
            text = (self._separator if self.text else "") + piece
            self.text += text
            if self._on_delta is not None:
                logprobs = segment_logprobs if self._options.logprobs else None
                self._on_delta(TextDelta(text, logprobs, segment))
        self.logprobs += window.logprobs

    def result(self, duration: float, prompt_tokens: int) -> Transcript:
        assert not self._waiting, "a piece's windows were never handed on"
        return Transcript(
            text=self.text,
            language=self._language,
            duration=duration,
            segments=self.segments,
            logprobs=self.logprobs if self._options.logprobs else None,
            tokens=TokenUsage(
                # One audio token per encoder position, as OpenAI counts Whisper's input.
                audio_tokens=math.ceil(duration * self._audio_tokens_per_second),
                text_tokens=prompt_tokens,
                output_tokens=sum(len(segment.tokens) for segment in self.segments),
            ),
        )
