"""The engine: takes a request from upload to transcript, off the event loop.

Decoding (PyAV) and voice activity detection run on a pool of threads sized to the cores.
Each model then has one scheduler thread (see :mod:`stenostack.engine.scheduler`) that
batches the model calls of every request in flight; CTranslate2 releases the GIL and spreads
each call over the cores, so the event loop stays free to serve HTTP while the model works.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from stenostack.audio.decode import DecodedAudio, decode_audio
from stenostack.engine.admission import AudioQueueBound
from stenostack.engine.pipeline import (
    PreparedAudio,
    finish_transcript,
    prepare_audio,
    silent_transcript,
)
from stenostack.engine.scheduler import BatchScheduler
from stenostack.metrics import EngineMetrics
from stenostack.models.base import (
    DeltaSink,
    SpeechToTextModel,
    TextDelta,
    Transcript,
    TranscriptionOptions,
)
from stenostack.models.registry import ModelRegistry


@dataclass
class EngineResult:
    transcript: Transcript
    model: SpeechToTextModel


@dataclass(frozen=True)
class EngineLimits:
    """How much audio the engine takes on, and how long a batch waits to fill."""

    # The longest audio one request may hold, in seconds: decoding stops past it.
    max_audio_seconds: float
    # Audio seconds each model may have admitted and unfinished before it answers 429.
    max_queued_audio_seconds: float
    # How long a batch may wait for requests that are being decoded to join it.
    gather_window_s: float


class Engine:
    def __init__(
        self, registry: ModelRegistry, metrics: EngineMetrics, limits: EngineLimits
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.limits = limits
        self._preparers = ThreadPoolExecutor(
            max_workers=max(os.cpu_count() or 1, 1), thread_name_prefix="prepare"
        )
        self._schedulers: dict[str, BatchScheduler] = {}
        self._bounds: dict[str, AudioQueueBound] = {}

    def model_for(
        self, name: str, options: TranscriptionOptions
    ) -> tuple[str, SpeechToTextModel, TranscriptionOptions]:
        """Resolve a public model name and check the options against that model."""
        root = self.registry.root_name(name)
        model = self.registry.get(root)
        return root, model, model.validate(options)

    async def run(
        self,
        model_name: str,
        source: BinaryIO | DecodedAudio,
        options: TranscriptionOptions,
        *,
        on_admitted: Callable[[], None] | None = None,
        on_delta: DeltaSink | None = None,
    ) -> EngineResult:
        """Transcribe ``source``: a file to decode, or audio already decoded.

        ``on_admitted`` is called once the audio is decoded and the model has accepted the
        work, so a streaming response knows that no 4xx can come any more. ``on_delta`` is
        called on the event loop with each piece of text as soon as it is final. Cancelling
        the caller's task cancels the remaining work.
        """
        root, model, options = self.model_for(model_name, options)
        scheduler = self._scheduler(root, model)
        loop = asyncio.get_running_loop()
        with scheduler.preparing():
            prepared: PreparedAudio = await loop.run_in_executor(
                self._preparers, self._prepare, model, source, options
            )
        if prepared.is_silent:
            if on_admitted is not None:
                on_admitted()
            return EngineResult(silent_transcript(model, options, prepared.duration), model)

        bound = self._bound(root)
        bound.admit(prepared.duration, scheduler.busy_seconds())
        if on_admitted is not None:
            on_admitted()
        finished = False
        started = time.perf_counter()
        ticket = scheduler.submit(
            model.start_transcription(prepared.speech, options, _on_loop(loop, on_delta))
        )
        try:
            transcript = await asyncio.wrap_future(ticket.future)
            finished = True
        except asyncio.CancelledError:
            ticket.cancel()
            raise
        finally:
            bound.release(prepared.duration, finished=finished)
        if prepared.duration > 0:
            rtf = (time.perf_counter() - started) / prepared.duration
            self.metrics.real_time_factor.labels(root).observe(rtf)
        return EngineResult(finish_transcript(transcript, prepared, model.audio_config), model)

    def _prepare(
        self,
        model: SpeechToTextModel,
        source: BinaryIO | DecodedAudio,
        options: TranscriptionOptions,
    ) -> PreparedAudio:
        sample_rate = model.audio_config.sample_rate
        if isinstance(source, DecodedAudio):
            if source.sample_rate != sample_rate:
                raise ValueError(f"audio at {source.sample_rate} Hz for a {sample_rate} Hz model")
            audio = source
        else:
            audio = decode_audio(source, sample_rate, self.limits.max_audio_seconds)
        return prepare_audio(audio, options)

    def _scheduler(self, root: str, model: SpeechToTextModel) -> BatchScheduler:
        if root not in self._schedulers:
            self._schedulers[root] = BatchScheduler(
                root, model, self.metrics, self.limits.gather_window_s
            )
        return self._schedulers[root]

    def _bound(self, root: str) -> AudioQueueBound:
        if root not in self._bounds:
            bound = AudioQueueBound(root, self.limits.max_queued_audio_seconds)
            self.metrics.queued_audio_seconds.labels(root).set_function(
                lambda: bound.admitted_seconds
            )
            self._bounds[root] = bound
        return self._bounds[root]

    def shutdown(self) -> None:
        self._preparers.shutdown(wait=False, cancel_futures=True)
        for scheduler in self._schedulers.values():
            scheduler.close()


def _on_loop(loop: asyncio.AbstractEventLoop, sink: DeltaSink | None) -> DeltaSink | None:
    """``sink`` called on the event loop, in order, from the model's thread."""
    if sink is None:
        return None

    def hand_over(delta: TextDelta) -> None:
        loop.call_soon_threadsafe(sink, delta)

    return hand_over
