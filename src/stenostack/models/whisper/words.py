"""Word timings from Whisper's cross-attention alignment (CTranslate2 ``align``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from stenostack.models.base import TokenLogprob
from stenostack.models.whisper.units import POSITIONS_PER_SECOND

# Punctuation stripped from a word's edges: OpenAI's ``words`` carry bare words.
_EDGE_PUNCTUATION = "\"'“”‘’«»¿([{-,.。，!！?？:：;；)]}、…·"


@dataclass
class AlignedWord:
    text: str
    start: float  # seconds from the window start
    end: float
    probability: float
    first_token: int  # index into the window's text tokens


def token_jump_times(alignments: Sequence[Sequence[int]]) -> np.ndarray:
    """The time at which attention moves on to each successive text token (alignments
    pair a text token with an encoder position)."""
    if not alignments:
        return np.zeros(0)
    pairs = np.asarray(alignments, dtype=np.int64)
    text_index, time_index = pairs[:, 0], pairs[:, 1]
    moves = np.concatenate([[True], np.diff(text_index) != 0])
    result: np.ndarray = time_index[moves] / POSITIONS_PER_SECOND
    return result


def aligned_words(
    words: Sequence[str],
    word_tokens: Sequence[Sequence[int]],
    jump_times: np.ndarray,
    token_probs: Sequence[float],
) -> list[AlignedWord]:
    """Give each word the span between the jumps at its first token and after its last."""
    if len(jump_times) == 0:
        return []
    last_jump = len(jump_times) - 1
    result = []
    position = 0
    for text, tokens in zip(words, word_tokens, strict=True):
        start_index = min(position, last_jump)
        end_index = min(position + len(tokens), last_jump)
        probs = token_probs[position : position + len(tokens)]
        probability = float(np.mean(probs)) if len(probs) else 0.0
        bare = text.strip().strip(_EDGE_PUNCTUATION)
        if bare:
            start = float(jump_times[start_index])
            end = float(jump_times[end_index])
            result.append(AlignedWord(bare, start, max(end, start), probability, position))
        position += len(tokens)
    return result


def token_logprobs(
    tokens: Sequence[int], token_probs: Sequence[float], decode_token: Callable[[int], str]
) -> list[TokenLogprob]:
    """Per-token log probabilities in OpenAI's ``logprobs`` shape."""
    result = []
    for token, probability in zip(tokens, token_probs, strict=False):
        text = decode_token(token)
        logprob = math.log(max(probability, 1e-30))  # finite: JSON has no -Infinity
        result.append(TokenLogprob(text, logprob, list(text.encode("utf-8"))))
    return result
