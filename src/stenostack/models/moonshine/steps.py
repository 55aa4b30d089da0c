"""Moonshine's model calls as batchable steps, and the runner that batches them.

Neither graph takes an attention mask for the audio, so rows share a call only when they
have the same shape: an encoder call takes audio padded to one length (the length buckets
of :mod:`.input_sizing`), a decoder call the encoder outputs of one length. Temperatures
may differ within a decoder call: each sampled row draws from its own generator.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stenostack.audio.samples import Int16Audio, to_float32
from stenostack.models.base import ModelStep
from stenostack.models.moonshine.decoding import Decoded, RowRequest, decode_batch
from stenostack.models.moonshine.sessions import Hidden, MoonshineSessions


@dataclass(frozen=True)
class BatchCaps:
    """How many rows one call may take: at most ``*_rows``, and in all at most
    ``encode_samples`` of (padded) audio or ``decode_positions`` encoder positions, since
    an encoder call's work and memory, and a decoding loop's caches, grow with them."""

    encode_rows: int
    encode_samples: int
    decode_rows: int
    decode_positions: int


@dataclass(eq=False)
class Encode(ModelStep):
    """A piece's audio, padded with zeros to ``input_samples``, encoded."""

    samples: Int16Audio
    input_samples: int

    @property
    def batch_key(self) -> Hashable:
        return ("encode", self.input_samples)


@dataclass(eq=False)
class Decode(ModelStep):
    """A piece's text, decoded from its encoder output [positions, width]."""

    encoded: Hidden
    row: RowRequest

    @property
    def batch_key(self) -> Hashable:
        return ("decode", self.encoded.shape)


class MoonshineStepRunner:
    """Runs a batch of same-key steps as one encoder call or one decoding loop."""

    def __init__(self, sessions: MoonshineSessions, vocab_size: int, caps: BatchCaps) -> None:
        self._sessions = sessions
        self._vocab_size = vocab_size
        self._caps = caps

    def max_batch_size(self, step: ModelStep) -> int:
        caps = self._caps
        if isinstance(step, Decode):
            rows, room = caps.decode_rows, caps.decode_positions // int(step.encoded.shape[0])
        elif isinstance(step, Encode):
            rows, room = caps.encode_rows, caps.encode_samples // step.input_samples
        else:
            raise TypeError(f"not a Moonshine step: {step!r}")
        return max(min(rows, room), 1)

    def run(self, steps: Sequence[ModelStep]) -> list[Any]:
        encodes = [step for step in steps if isinstance(step, Encode)]
        if len(encodes) == len(steps):
            return self._encode(encodes)
        decodes = [step for step in steps if isinstance(step, Decode)]
        if len(decodes) == len(steps):
            return self._decode(decodes)
        raise TypeError(f"not a batch of one Moonshine step kind: {[type(s) for s in steps]}")

    def _encode(self, steps: list[Encode]) -> list[Hidden]:
        audio = np.zeros((len(steps), steps[0].input_samples), dtype=np.float32)
        for row, step in zip(audio, steps, strict=True):
            samples = step.samples[: len(row)]
            row[: len(samples)] = to_float32(samples)
        hidden = self._sessions.encode(audio)
        return [hidden[i] for i in range(len(steps))]

    def _decode(self, steps: list[Decode]) -> list[Decoded]:
        hidden = np.stack([step.encoded for step in steps])
        return decode_batch(self._sessions, hidden, [s.row for s in steps], self._vocab_size)
