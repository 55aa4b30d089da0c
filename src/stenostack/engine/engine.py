"""The engine: takes a request from upload to transcript, off the event loop.

A file's length is read from its header first, so a file that declares too much is refused
at once and the rest are admitted against the model's queue bound (or refused with 429)
before any decoding. Decoding (PyAV) and voice activity detection then run on the decode
lanes (:mod:`stenostack.engine.decode_lanes`), shortest file first. Each model then has one
scheduler thread (see :mod:`stenostack.engine.scheduler`) that
batches the model calls of every request in flight; CTranslate2 releases the GIL and spreads
each call over the cores, so the event loop stays free to serve HTTP while the model works.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from stenostack.audio.decode import (
    DecodeBudgetExceeded,
    DecodedAudio,
    decode_audio,
    probe_audio,
)
from stenostack.audio.growing_speech import SpeechPreparation
from stenostack.engine.admission import AudioQueueBound
from stenostack.engine.decode_lanes import DecodeLanes
from stenostack.engine.diarization_lane import DiarizationLane, SpeakerRequest
from stenostack.engine.memory import release_free_memory
from stenostack.engine.pipeline import (
    PreparedAudio,
    deltas_on_file_timeline,
    finish_transcript,
    growing_speech_enabled,
    on_file_timeline,
    prepare_audio,
    prepare_growing,
    prepared_from,
    ready_async,
    silent_transcript,
)
from stenostack.engine.scheduler import BatchScheduler, Ticket, WorkClass
from stenostack.engine.speaker_join import SpeakerJoin
from stenostack.metrics import EngineMetrics
from stenostack.models.base import (
    Capabilities,
    DeltaSink,
    SpeechToTextModel,
    TextDelta,
    Transcript,
    TranscriptionOptions,
)
from stenostack.models.registry import ModelRegistry

log = logging.getLogger(__name__)


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
    # Files expected to be longer than this are "long": they may hold only some of the
    # decode threads at once, so one is always free for short clips.
    long_decode_seconds: float = 600.0
    # A file that decodes to more than max(2 x, + this) its expected length is stopped and
    # decoded again as a long file (its header lied, or gave no length).
    decode_budget_slack_seconds: float = 60.0


class Engine:
    def __init__(
        self,
        registry: ModelRegistry,
        metrics: EngineMetrics,
        limits: EngineLimits,
        diarization: DiarizationLane | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.limits = limits
        self.diarization = diarization or DiarizationLane(metrics)
        workers = max(os.cpu_count() or 1, 2)
        self._lanes = DecodeLanes(
            workers,
            long_seconds=limits.long_decode_seconds,
            max_long=workers - 1,
            on_idle=release_free_memory,
        )
        metrics.decodes_waiting.set_function(self._lanes.waiting)
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
        work_class: WorkClass = "file",
        speakers: SpeakerRequest | None = None,
    ) -> EngineResult:
        """Transcribe ``source``: a file to decode, or audio already decoded.

        A file is admitted by its expected length before it is decoded, so a full queue
        answers 429 without decoding anything. ``on_admitted`` is called once the audio is
        decoded and the model has accepted the work, so a streaming response knows that no
        4xx can come any more. ``on_delta`` is called on the event loop with each piece of
        text as soon as it is final. ``work_class`` says which class shares model time
        with the other (a live turn passes ``"live"``). With ``speakers``, the speech is also
        diarized, beside the transcription, and the segments (and deltas) come split by
        speaker. Cancelling the caller's task cancels the remaining work.
        """
        root, model, options = self.model_for(model_name, options)
        if speakers is not None:
            diarizer = self.diarization.diarizer(model.audio_config.sample_rate)
            options = _timed_for_speakers(options, model.capabilities)
            known = await self.diarization.known_speakers(diarizer, speakers.references)
        scheduler = self._scheduler(root, model)
        bound = self._bound(root)
        loop = asyncio.get_running_loop()
        growing: SpeechPreparation | None = None
        decoding: asyncio.Future[None] | None = None
        with scheduler.preparing():
            if isinstance(source, DecodedAudio):
                expected = source.duration
            else:
                max_seconds = self.limits.max_audio_seconds
                probe = await self._lanes.run(
                    0.0, functools.partial(probe_audio, source, max_seconds)
                )
                expected = probe.estimated_seconds
            bound.admit(expected, scheduler.busy_seconds())
            if (
                on_delta is not None
                and _takes_growing(model)
                and not isinstance(source, DecodedAudio)
                and speakers is None  # diarization needs the whole speech
            ):
                growing = prepare_growing(
                    source, model.audio_config, self.limits.max_audio_seconds, options, expected
                )
                decoding = await self._start_growing(model, bound, growing, expected)
            else:
                try:
                    prepared = await self._prepare(model, source, options, expected)
                    bound.settle(expected, prepared.duration, scheduler.busy_seconds())
                except BaseException:
                    _release(bound, expected, finished=False)
                    raise
        if growing is not None and decoding is not None:
            return await self._finish_growing(
                root, model, scheduler, bound, growing, decoding, options, expected,
                on_admitted, on_delta, work_class,
            )  # fmt: skip
        if prepared.is_silent:
            _release(bound, prepared.duration, finished=False)
            if on_admitted is not None:
                on_admitted()
            return EngineResult(silent_transcript(model, options, prepared.duration), model)

        finished = False
        started = time.perf_counter()
        join: SpeakerJoin | None = None
        ticket: Ticket | None = None
        try:  # from here on, whatever happens gives the admitted audio back
            if on_admitted is not None:
                on_admitted()
            if speakers is not None:
                diarizing = self.diarization.diarize(
                    diarizer, prepared.speech.samples, speakers.count, known
                )
                join = SpeakerJoin(
                    diarizing,
                    functools.partial(
                        on_file_timeline,
                        timeline=prepared.timeline,
                        audio_config=model.audio_config,
                    ),
                    on_delta,
                )
                sink: DeltaSink | None = join.take
            else:
                sink = deltas_on_file_timeline(
                    on_delta, lambda: prepared.timeline, model.audio_config
                )
            ticket = scheduler.submit(
                model.start_transcription(prepared.speech, options, _on_loop(loop, sink)),
                work_class,
            )
            transcript = await asyncio.wrap_future(ticket.future)
            if join is not None:
                transcript = await join.finish(transcript)
            finished = True
        except BaseException:
            if ticket is not None:
                ticket.cancel()
            if join is not None:
                join.cancel()
            raise
        finally:
            _release(bound, prepared.duration, finished=finished)
        if prepared.duration > 0:
            rtf = (time.perf_counter() - started) / prepared.duration
            self.metrics.real_time_factor.labels(root).observe(rtf)
        return EngineResult(finish_transcript(transcript, prepared, model.audio_config), model)

    async def _start_growing(
        self,
        model: SpeechToTextModel,
        bound: AudioQueueBound,
        growing: SpeechPreparation,
        expected: float,
    ) -> asyncio.Future[None]:
        """Start decoding a streamed file that a model can take growing; return once its
        first windows are final (or it is all decoded), with decoding going on. An error so
        far is an ordinary 4xx answer."""
        self.metrics.decodes.inc()
        decoding = asyncio.ensure_future(self._decode_growing(growing, expected))
        # Its error also reaches the speech's readers, who raise it; this one need not.
        decoding.add_done_callback(lambda task: task.cancelled() or task.exception())
        rate = model.audio_config.sample_rate
        first_samples = int((model.audio_config.max_clip_seconds + 1) * rate)
        try:
            await ready_async(growing.speech, first_samples)
            if decoding.done():
                await decoding  # raises what stopped it early
        except BaseException:
            growing.stop()
            decoding.cancel()
            _release(bound, expected, finished=False)
            raise
        return decoding

    async def _finish_growing(
        self,
        root: str,
        model: SpeechToTextModel,
        scheduler: BatchScheduler,
        bound: AudioQueueBound,
        growing: SpeechPreparation,
        decoding: asyncio.Future[None],
        options: TranscriptionOptions,
        expected: float,
        on_admitted: Callable[[], None] | None,
        on_delta: DeltaSink | None,
        work_class: WorkClass,
    ) -> EngineResult:
        """The model on the growing speech while decoding goes on. Errors found from here on
        (a file truncated or too long past its first minutes) reach a stream as an error
        event."""
        loop = asyncio.get_running_loop()
        ticket: Ticket | None = None
        transcript: Transcript | None = None  # None: nothing but silence, no model work
        started = time.perf_counter()
        try:
            if not (growing.speech.complete and growing.speech.length == 0):
                if on_admitted is not None:
                    on_admitted()
                ticket = scheduler.submit(
                    model.start_growing_transcription(
                        growing.speech,
                        options,
                        _on_loop(
                            loop,
                            deltas_on_file_timeline(
                                on_delta, growing.speech.timeline, model.audio_config
                            ),
                        ),
                    ),
                    work_class,
                )
                transcript = await asyncio.wrap_future(ticket.future)
            await decoding
            prepared = prepared_from(growing.speech)
        except BaseException:
            if ticket is not None:
                ticket.cancel()  # first, so that the job is not woken to fail
            growing.stop()
            decoding.cancel()
            _release(bound, expected, finished=False)
            raise
        bound.settle(expected, prepared.duration, scheduler.busy_seconds())
        _release(bound, prepared.duration, finished=transcript is not None)
        if transcript is None:
            if on_admitted is not None:
                on_admitted()
            return EngineResult(silent_transcript(model, options, prepared.duration), model)
        if prepared.duration > 0:
            rtf = (time.perf_counter() - started) / prepared.duration
            self.metrics.real_time_factor.labels(root).observe(rtf)
        return EngineResult(finish_transcript(transcript, prepared, model.audio_config), model)

    async def _decode_growing(self, growing: SpeechPreparation, expected: float) -> None:
        """Run ``growing`` on the decode lanes, as :meth:`_prepare` runs a whole decode."""
        budget = self._decode_budget(expected)
        if not await self._lanes.run(expected, functools.partial(growing.run, budget)):
            log.info("a file expected to last %.0f s decodes to more; going on as long", expected)
            await self._lanes.run(
                self.limits.max_audio_seconds, functools.partial(growing.run, None)
            )

    def _decode_budget(self, expected: float) -> float | None:
        """Seconds a file expected to last ``expected`` may decode to before it goes back in
        line as a long one; None: it is long already, with no budget but the limit."""
        if expected > self.limits.long_decode_seconds:
            return None
        return max(2 * expected, expected + self.limits.decode_budget_slack_seconds)

    async def _prepare(
        self,
        model: SpeechToTextModel,
        source: BinaryIO | DecodedAudio,
        options: TranscriptionOptions,
        expected: float,
    ) -> PreparedAudio:
        """Decode and find the speech on the decode lanes, in turn with other files by
        ``expected`` length; a file that outgrows its budget goes back as a long one."""
        if not isinstance(source, DecodedAudio):
            self.metrics.decodes.inc()  # once per file, even if it is decoded again as long
        budget = self._decode_budget(expected)
        prepare = functools.partial(self._decode_and_find_speech, model, source, options)
        try:
            return await self._lanes.run(expected, functools.partial(prepare, budget))
        except DecodeBudgetExceeded:
            log.info(
                "a file expected to last %.0f s decodes to more; decoding it as long", expected
            )
            return await self._lanes.run(
                self.limits.max_audio_seconds, functools.partial(prepare, None)
            )

    def _decode_and_find_speech(
        self,
        model: SpeechToTextModel,
        source: BinaryIO | DecodedAudio,
        options: TranscriptionOptions,
        budget_seconds: float | None,
    ) -> PreparedAudio:
        sample_rate = model.audio_config.sample_rate
        if isinstance(source, DecodedAudio):
            if source.sample_rate != sample_rate:
                raise ValueError(f"audio at {source.sample_rate} Hz for a {sample_rate} Hz model")
            audio = source
        else:
            source.seek(0)
            audio = decode_audio(
                source, sample_rate, self.limits.max_audio_seconds, budget_seconds=budget_seconds
            )
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

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop taking work and cancel what waits; blocks (up to ``timeout_s``) until the
        model calls in progress have returned, so the process may exit."""
        self._lanes.close()
        self.diarization.close()
        for scheduler in self._schedulers.values():
            scheduler.close()
        deadline = time.monotonic() + timeout_s
        for scheduler in self._schedulers.values():
            scheduler.join(deadline)


def _timed_for_speakers(
    options: TranscriptionOptions, capabilities: Capabilities
) -> TranscriptionOptions:
    """Options whose transcript can be joined to speakers by time: segment times, and word
    times where the model has them (a segment is split where its words change speaker)."""
    return dataclasses.replace(
        options,
        segment_timestamps=True,
        word_timestamps=options.word_timestamps or capabilities.word_timestamps,
    )


def _takes_growing(model: SpeechToTextModel) -> bool:
    """Whether a streamed file goes the growing way (to a model that can take it)."""
    return growing_speech_enabled() and model.takes_growing_speech


def _release(bound: AudioQueueBound, seconds: float, *, finished: bool) -> None:
    bound.release(seconds, finished=finished)
    if bound.admitted_seconds == 0:
        # Idle again: what the work allocated goes back to the system, off the event loop.
        asyncio.get_running_loop().run_in_executor(None, release_free_memory)


def _on_loop(loop: asyncio.AbstractEventLoop, sink: DeltaSink | None) -> DeltaSink | None:
    """``sink`` called on the event loop, in order, from the model's thread."""
    if sink is None:
        return None

    def hand_over(delta: TextDelta) -> None:
        loop.call_soon_threadsafe(sink, delta)

    return hand_over
