"""A model whose job reads its speech as it becomes final, so that whole speech and speech
still being decoded (:class:`~stenostack.audio.growing_speech.GrowingSpeech`) go through
one job: each family that cuts speech into pieces (:mod:`stenostack.models.pieces`) only
writes that job."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

from stenostack.audio.growing_speech import GrowingSpeech
from stenostack.audio.samples import Speech
from stenostack.models.base import (
    DeltaSink,
    SpeechToTextModel,
    TranscriptionJob,
    TranscriptionOptions,
)


class PiecewiseModel(SpeechToTextModel):
    """A model that takes growing speech with the job it runs on whole speech."""

    takes_growing_speech = True

    def start_transcription(
        self, speech: Speech, options: TranscriptionOptions, on_delta: DeltaSink | None = None
    ) -> TranscriptionJob:
        return self._transcription(lambda _end: speech, lambda _end: True, options, on_delta)

    def start_growing_transcription(
        self,
        speech: GrowingSpeech,
        options: TranscriptionOptions,
        on_delta: DeltaSink | None = None,
    ) -> TranscriptionJob:
        return self._transcription(speech.ready, speech.is_ready, options, on_delta)

    @abstractmethod
    def _transcription(
        self,
        speech_until: Callable[[int], Speech],
        is_final: Callable[[int], bool],
        options: TranscriptionOptions,
        on_delta: DeltaSink | None,
    ) -> TranscriptionJob:
        """The job; ``speech_until(end)`` is the speech with at least its first ``end``
        samples final (all of it, once it is complete), ``is_final(end)`` whether it would
        return at once."""
