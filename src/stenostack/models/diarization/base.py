"""The diarization model's interface: speech in, speaker turns out.

Diarization is its own model, not a speech-model special case: any transcript with times can
be joined to its turns (:mod:`stenostack.models.diarization.attribution`). Times are seconds
on the speech's own timeline, like a speech model's; the engine maps them to the file.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stenostack.audio.samples import Int16Audio

#: A voice's fingerprint: a unit-length speaker embedding.
VoicePrint = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker talking from ``start`` to ``end``; turns of different speakers overlap
    where they talk at once."""

    start: float
    end: float
    speaker: int  # the diarization's own number for the voice


@dataclass(frozen=True)
class SpeakerCount:
    """Bounds the caller puts on the number of speakers (None: found from the audio)."""

    minimum: int | None = None
    maximum: int | None = None


#: No bounds: the count is found from the audio.
ANY_COUNT = SpeakerCount()


@dataclass(frozen=True)
class KnownSpeaker:
    """A voice the caller named, from a reference clip."""

    name: str
    voice: VoicePrint


@dataclass
class Diarization:
    """Who spoke when, and which voices are known speakers."""

    turns: list[SpeakerTurn]
    names: dict[int, str] = field(default_factory=dict)  # speaker number -> known name

    @property
    def speakers(self) -> int:
        return len({turn.speaker for turn in self.turns})


class UnusableVoice(ValueError):
    """A reference clip holds too little speech to know the voice by."""


class SpeakerDiarizer(ABC):
    """A loaded diarization model. Its methods block; the engine runs them off the loop."""

    #: The rate of the samples it takes, in Hz.
    sample_rate: int

    @abstractmethod
    def voice_print(self, samples: Int16Audio) -> VoicePrint:
        """The voice in a reference clip; :class:`UnusableVoice` if it holds too little
        speech."""

    @abstractmethod
    def diarize(
        self,
        samples: Int16Audio,
        count: SpeakerCount = ANY_COUNT,
        known: Sequence[KnownSpeaker] = (),
        stop: threading.Event | None = None,
    ) -> Diarization:
        """Who spoke when in ``samples``; a voice that matches a known speaker is named.
        Once ``stop`` is set, it may end early with what it has (the caller has gone)."""
