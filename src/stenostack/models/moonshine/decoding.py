"""Decoding a batch of encoded pieces token by token, each row at its own temperature.

The whole loop runs in one call, its caches kept inside it. A row stops at the end token
or at its own token limit; a finished row is fed the end token and its output ignored
until every row has finished, since rows share each decoder call. Temperature 0 takes the
most likely token (greedy, as the reference C++ ``MoonshineModel::transcribe``); above 0
a token is drawn from the softmax at that temperature with the row's own generator, so
what a row draws never depends on the rows beside it. A row may be barred from ending
before its first token (see ``holds_words``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stenostack.models.moonshine.sessions import Cache, Hidden, MoonshineSessions
from stenostack.models.moonshine.tokenizer import END_TOKEN, START_TOKEN
from stenostack.models.moonshine.units import SAMPLE_RATE

# The most tokens a piece may decode per second of its audio: the reference's only guard
# against a decoder that loops (``max_tokens_per_second`` in moonshine-ai/moonshine's
# core/moonshine-model.h: 6.5, for English and Spanish; the library in moonshine-cpp 0.1.4
# allowed 13). English speech makes about 3 a second.
MAX_TOKENS_PER_SECOND = 6.5


def token_limit(samples: int) -> int:
    """How many tokens a piece of ``samples`` samples may decode."""
    return math.ceil(samples / SAMPLE_RATE * MAX_TOKENS_PER_SECOND)


@dataclass(frozen=True)
class RowRequest:
    """One row's decoding: how many tokens it may make, and how it picks them."""

    max_new_tokens: int
    temperature: float
    seed: int  # what a sampled row draws from; unused at temperature 0
    may_end_first: bool = True  # False: the first token is never the end token


@dataclass
class Decoded:
    """One row's tokens (the end token left out) and each one's log probability; the end
    token's too when the row ended on it rather than at its limit."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    end_logprob: float | None = None


def decode_batch(
    sessions: MoonshineSessions,
    hidden: Hidden,
    rows: Sequence[RowRequest],
    vocab_size: int,
) -> list[Decoded]:
    """Decode every row of ``hidden`` [rows, positions, width] with its request."""
    count = len(rows)
    results = [Decoded() for _ in rows]
    generators = [np.random.default_rng(row.seed) if row.temperature > 0 else None for row in rows]
    active = np.array([row.max_new_tokens > 0 for row in rows])
    tokens = np.full((count, 1), START_TOKEN, dtype=np.int64)
    cache: Cache | None = None
    while active.any():
        step = sessions.decode(tokens, hidden, cache)
        cache = step.cache
        # The logits past the vocabulary (padding to a round size) are no tokens.
        logprobs = _log_softmax(step.logits[:, :vocab_size])
        chosen = np.full(count, END_TOKEN, dtype=np.int64)
        for index in np.flatnonzero(active).tolist():
            row, result = rows[index], results[index]
            choices = logprobs[index]
            if not row.may_end_first and not result.tokens:
                choices = choices.copy()
                choices[END_TOKEN] = -np.inf
            generator = generators[index]
            token = (
                int(np.argmax(choices))
                if generator is None
                else _sample(choices, row.temperature, generator)
            )
            chosen[index] = token
            if token == END_TOKEN:
                result.end_logprob = float(logprobs[index, token])
                active[index] = False
                continue
            result.tokens.append(token)
            result.logprobs.append(float(logprobs[index, token]))
            if len(result.tokens) >= row.max_new_tokens:
                active[index] = False
        tokens = chosen[:, None]
    return results


def _sample(
    logprobs: npt.NDArray[np.float64], temperature: float, generator: np.random.Generator
) -> int:
    scaled = logprobs / temperature
    probabilities = np.exp(scaled - scaled.max())
    cumulative = np.cumsum(probabilities)
    drawn = generator.random() * cumulative[-1]
    return int(min(np.searchsorted(cumulative, drawn, side="right"), len(cumulative) - 1))


def _log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    wide = logits.astype(np.float64)
    wide -= wide.max(axis=1, keepdims=True)
    wide -= np.log(np.exp(wide).sum(axis=1, keepdims=True))
    return wide


# Moonshine may end a piece of speech before its first word: 5 of 44 espeak-ng clips
# padded to 2 s buckets, 2 to 9 of the pieces of a 3-minute read (in pieces of 30 to
# 10 s), the router's health-check "Hello." at any padding (the reference library gives ""
# too).
# Such a piece is decoded again with the end token barred from the first position. Made
# to start, a decode of audio without words stops after one word ("You" or "So" for
# silence, noise, a chord, breath or clicks; "I." for 3 s of brown noise), while a missed
# piece of speech reads on (2.4 to 3 tokens a second). So the retry's text is kept when it
# has at least 2 tokens and 1 a second. With it the 44 clips went from 19.7 to 5.4 % WER
# (2 s buckets), and the 3-minute read in 30 s pieces from 28.6 % (retried at their exact
# length instead, which missed them too) to 2.3 % (``python -m
# benchmarks.moonshine_sizing buckets``). A 3 s hum still reads as "♪♪".
MIN_FORCED_TOKENS = 2
MIN_FORCED_TOKENS_PER_SECOND = 1.0


def holds_words(decoded: Decoded, samples: int) -> bool:
    """Whether a decode made to begin with a word found words in ``samples`` samples."""
    seconds = samples / SAMPLE_RATE
    return len(decoded.tokens) >= max(MIN_FORCED_TOKENS, seconds * MIN_FORCED_TOKENS_PER_SECOND)
