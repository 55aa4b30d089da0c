"""Diarization beside transcription: the diarization model works on its own thread while
the speech model's scheduler transcribes, so a diarized request costs about the longer of
the two, not their sum.

One thread: the diarizer's calls are already batched within a request (its windows go
through the segmentation and voice models a batch at a time), and on a small CPU a second
one would only take cores from transcription. Requests wait in line for it, in order; the
queued audio bound (``engine/admission.py``) already bounds the line.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from stenostack.audio.decode import decode_audio
from stenostack.audio.samples import Int16Audio
from stenostack.errors import APIError, InvalidRequest
from stenostack.metrics import EngineMetrics
from stenostack.models.diarization.base import (
    ANY_COUNT,
    Diarization,
    KnownSpeaker,
    SpeakerCount,
    SpeakerDiarizer,
    UnusableVoice,
    VoicePrint,
)

log = logging.getLogger(__name__)

# OpenAI's bounds on a known speaker's reference clip, in seconds (a little slack for
# encoders' padding).
REFERENCE_SECONDS = (2.0, 10.0)
REFERENCE_SLACK_SECONDS = 0.1
REFERENCES_PARAM = "known_speaker_references[]"


@dataclass(frozen=True)
class ReferenceClip:
    """A known speaker's name and an encoded clip of their voice."""

    name: str
    audio: bytes


@dataclass(frozen=True)
class SpeakerRequest:
    """What a caller asked of diarization."""

    count: SpeakerCount = ANY_COUNT
    references: Sequence[ReferenceClip] = field(default_factory=tuple)


class DiarizationLane:
    def __init__(
        self, metrics: EngineMetrics, directory: Path | None = None, threads: int = 1
    ) -> None:
        self._metrics = metrics
        self._directory = directory
        self._threads = threads
        self._diarizer: SpeakerDiarizer | None = None
        self._unavailable = "the diarization model is still loading"
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="diarization")
        self._waiting = 0
        metrics.diarizations_waiting.set_function(lambda: self._waiting)

    def load(self) -> None:
        """Load the diarization model (blocking); without it, diarization requests get a
        400 that says why, and everything else is served as usual."""
        from stenostack.models.diarization.sources import DiarizationUnavailable, load_diarizer

        # The voice encoder runs best on one BLAS thread: serving.prepare_process sets it.
        try:
            self._diarizer = load_diarizer(self._directory, self._threads)
        except DiarizationUnavailable as exc:
            self._unavailable = str(exc)
            log.warning("speaker diarization is unavailable: %s", exc)
            return
        log.info("speaker diarization ready")

    def disable(self, reason: str) -> None:
        self._unavailable = reason

    @property
    def available(self) -> bool:
        return self._diarizer is not None

    def diarizer(self, sample_rate: int) -> SpeakerDiarizer:
        """The diarizer, for speech at ``sample_rate``; a 400 if there is none."""
        if self._diarizer is None:
            raise InvalidRequest(
                f"Speaker diarization is not available on this server: {self._unavailable}.",
                param="response_format",
                code="diarization_unavailable",
            )
        if self._diarizer.sample_rate != sample_rate:
            raise InvalidRequest(
                f"This model hears audio at {sample_rate} Hz; the diarization model needs "
                f"{self._diarizer.sample_rate} Hz.",
                param="model",
                code="diarization_unavailable",
            )
        return self._diarizer

    async def known_speakers(
        self, diarizer: SpeakerDiarizer, references: Sequence[ReferenceClip]
    ) -> list[KnownSpeaker]:
        """Each reference clip decoded and voiced; a 400 naming the clip if it cannot be."""
        loop = asyncio.get_running_loop()
        known = []
        for index, clip in enumerate(references):
            voice = await loop.run_in_executor(
                self._thread, functools.partial(self._voice_print, diarizer, index, clip)
            )
            known.append(KnownSpeaker(clip.name, voice))
        return known

    def _voice_print(
        self, diarizer: SpeakerDiarizer, index: int, clip: ReferenceClip
    ) -> VoicePrint:
        where = f"known_speaker_references[{index}] ({clip.name})"
        shortest, longest = REFERENCE_SECONDS
        try:
            audio = decode_audio(io.BytesIO(clip.audio), diarizer.sample_rate, longest + 1.0)
        except APIError as exc:
            raise InvalidRequest(
                f"{where} is not a usable audio clip: {exc.message}", param=REFERENCES_PARAM
            ) from None
        slack = REFERENCE_SLACK_SECONDS
        if not shortest - slack <= audio.duration <= longest + slack:
            raise InvalidRequest(
                f"{where} lasts {audio.duration:.1f} s; a reference clip must last between "
                f"{shortest:g} and {longest:g} seconds.",
                param=REFERENCES_PARAM,
            )
        try:
            return diarizer.voice_print(audio.samples)
        except UnusableVoice as exc:
            raise InvalidRequest(
                f"{where} cannot be used to know the voice: {exc}.", param=REFERENCES_PARAM
            ) from None

    def diarize(
        self,
        diarizer: SpeakerDiarizer,
        samples: Int16Audio,
        count: SpeakerCount,
        known: Sequence[KnownSpeaker],
    ) -> asyncio.Future[Diarization]:
        """Start diarizing ``samples``; it runs on beside whatever the caller does next.
        Cancelling the future before it started drops the work; once started, it stops
        at its next batch of windows."""
        stop = threading.Event()
        started = threading.Event()

        def work() -> Diarization:
            started.set()
            self._waiting -= 1
            began = time.perf_counter()
            diarization = diarizer.diarize(samples, count, known, stop=stop)
            self._metrics.diarization_duration.observe(time.perf_counter() - began)
            self._metrics.diarization_audio_seconds.inc(len(samples) / diarizer.sample_rate)
            return diarization

        def ended(future: asyncio.Future[Diarization]) -> None:
            if future.cancelled():
                stop.set()
                if not started.is_set():  # dropped from the line before it began
                    self._waiting -= 1

        self._waiting += 1
        future = asyncio.wrap_future(self._thread.submit(work))
        future.add_done_callback(ended)
        return future

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
