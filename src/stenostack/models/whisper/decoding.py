"""Pure pieces of Whisper decoding: the fallback rule and cutting tokens into segments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stenostack.models.whisper.units import (
    FRAMES_PER_SECOND,
    FRAMES_PER_TIMESTAMP_TOKEN,
    SECONDS_PER_TIMESTAMP_TOKEN,
)

# Whisper's thresholds for "this decode went wrong, try a higher temperature".
COMPRESSION_RATIO_THRESHOLD = 2.4
LOGPROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
# Above this temperature a window's text is not used as the next window's prompt: it is
# likely noisy and conditioning on it propagates errors.
PROMPT_RESET_TEMPERATURE = 0.5
DEFAULT_TEMPERATURE_LADDER = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# A window may decode this many times its token limit in all (every temperature of the
# fallback, each sampled hypothesis, the padded retry): its cost stays proportional to its
# audio whatever the prompt makes the decoder do. Real speech that needs a fallback stops
# well short of the limit, so it still climbs the whole ladder.
MAX_DECODE_PASSES = 8


def temperature_ladder(temperature: float) -> tuple[float, ...]:
    """0 means Whisper's ladder; any other value is used as given, without fallback."""
    return DEFAULT_TEMPERATURE_LADDER if temperature == 0 else (temperature,)


def average_logprob(score: float, length: int, length_penalty: float) -> float:
    """Whisper's average log probability of a hypothesis from CTranslate2's score (its log
    probability divided by ``length ** length_penalty``), as faster-whisper recovers it:
    the sum over the tokens, averaged over ``length + 1`` (the end of text counts)."""
    total: float = score * length**length_penalty
    return total / (length + 1)


@dataclass
class TokenBudget:
    """The tokens one window may still decode."""

    remaining: int

    @classmethod
    def for_window(cls, token_limit: int) -> TokenBudget:
        return cls(MAX_DECODE_PASSES * token_limit)

    def allows(self, tokens: int) -> bool:
        return tokens <= self.remaining

    def spend(self, tokens: int) -> None:
        self.remaining -= tokens


@dataclass
class DecodeAttempt:
    """One decode of one window at one temperature."""

    tokens: list[int]
    text: str
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float

    @property
    def is_silence(self) -> bool:
        return self.no_speech_prob > NO_SPEECH_THRESHOLD and self.avg_logprob < LOGPROB_THRESHOLD

    @property
    def needs_fallback(self) -> bool:
        if self.is_silence:
            return False
        return (
            self.compression_ratio > COMPRESSION_RATIO_THRESHOLD
            or self.avg_logprob < LOGPROB_THRESHOLD
        )


def best_of_failed(attempts: Sequence[DecodeAttempt]) -> DecodeAttempt:
    """When every temperature failed, keep the most likely attempt that does not loop."""
    not_looping = [a for a in attempts if a.compression_ratio <= COMPRESSION_RATIO_THRESHOLD]
    return max(not_looping or attempts, key=lambda a: a.avg_logprob)


@dataclass
class RawSegment:
    """A segment inside one window: times relative to the window start."""

    start: float
    end: float
    tokens: list[int]  # text tokens only


@dataclass
class WindowSplit:
    segments: list[RawSegment]
    advance_frames: int  # how far the next window starts after this one


def split_by_timestamps(
    tokens: Sequence[int], timestamp_begin: int, window_frames: int
) -> WindowSplit:
    """Cut a window's output at Whisper's timestamp tokens.

    A pair of consecutive timestamp tokens closes one segment and opens the next. When the
    output does not end on such a pair, the last piece of speech is unfinished: the next
    window starts at the last closed segment's end, so nothing is cut or said twice.
    """
    window_seconds = window_frames / FRAMES_PER_SECOND
    is_time = [token >= timestamp_begin for token in tokens]

    def seconds(token: int) -> float:
        return min((token - timestamp_begin) * SECONDS_PER_TIMESTAMP_TOKEN, window_seconds)

    single_timestamp_ending = len(tokens) >= 2 and is_time[-1] and not is_time[-2]
    cuts = [i for i in range(1, len(tokens)) if is_time[i] and is_time[i - 1]]

    if not cuts:
        text = [t for t in tokens if t < timestamp_begin]
        times = [t for t in tokens if t >= timestamp_begin]
        end = window_seconds
        if times and times[-1] != timestamp_begin:
            end = seconds(times[-1])
        start = seconds(times[0]) if len(times) > 1 and times[0] < times[-1] else 0.0
        segments = [RawSegment(start, end, text)] if text else []
        return WindowSplit(segments, window_frames)

    if single_timestamp_ending:
        cuts.append(len(tokens))
    segments = []
    last = 0
    for cut in cuts:
        piece = tokens[last:cut]
        last = cut
        text = [t for t in piece if t < timestamp_begin]
        if not text:
            continue
        start = seconds(piece[0]) if piece[0] >= timestamp_begin else 0.0
        end = seconds(piece[-1]) if piece[-1] >= timestamp_begin else window_seconds
        segments.append(RawSegment(start, max(end, start), text))

    if single_timestamp_ending:
        advance = window_frames
    else:
        last_timestamp = tokens[last - 1]
        advance = (last_timestamp - timestamp_begin) * FRAMES_PER_TIMESTAMP_TOKEN
        if advance <= 0:  # a degenerate "<|0.00|><|0.00|>" output must not stall the loop
            advance = window_frames
    return WindowSplit(segments, min(advance, window_frames))
