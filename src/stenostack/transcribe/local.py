"""Transcription in this process: the engine ``stenostack serve`` runs, on one model.

The registry and the engine are built as ``serve`` builds them (:mod:`stenostack.serving`),
with diarization off; only the one model asked for is loaded, so starting takes seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from stenostack.api.formats import verbose_json
from stenostack.config import EngineSettings
from stenostack.engine.engine import Engine
from stenostack.errors import APIError
from stenostack.models.base import TextDelta, TranscriptionOptions
from stenostack.serving import SetupError, build_engine, build_registry, prepare_process
from stenostack.transcribe.failures import TranscriptionFailed, UsageError
from stenostack.transcribe.inputs import Job
from stenostack.transcribe.outputs import Result

log = logging.getLogger(__name__)


class LocalTranscriber:
    """The bundled (or a local) model, loaded here, behind the engine."""

    def __init__(self, engine: Engine, model: str, options: TranscriptionOptions) -> None:
        self._engine = engine
        self._model = model
        self._options = options

    @classmethod
    async def start(
        cls, settings: EngineSettings, model: str, options: TranscriptionOptions
    ) -> LocalTranscriber:
        """Resolve and load ``model`` (a bundled name, an alias, a directory, or
        ``NAME=SOURCE``) and check ``options`` against it; raises :class:`UsageError`."""
        prepare_process()  # as serve does: the same numbers, and far lower peak memory
        target = settings.aliases.get(model)
        settings.models = [target if target is not None else model]
        try:
            registry = build_registry(settings)
        except SetupError as exc:
            raise UsageError(str(exc)) from exc
        name = model if target is not None else registry.specs[0].name
        try:
            await _in_thread(registry.load)
        except Exception as exc:
            raise UsageError(f"loading the model {model} failed: {registry.load_error}") from exc
        settings.diarization = False  # the command writes no speakers
        engine = build_engine(settings, registry)
        try:
            engine.model_for(name, options)
        except APIError as exc:
            engine.shutdown()
            raise UsageError(exc.message) from exc
        return cls(engine, name, options)

    async def transcribe(self, job: Job, on_progress: Callable[[float], None]) -> Result:
        """``job``'s transcript; ``on_progress`` hears how far into the file the text is
        final. Raises :class:`TranscriptionFailed`."""

        def heard(delta: TextDelta) -> None:
            if delta.segment is not None:
                on_progress(delta.segment.end)

        options = self._options
        try:
            with job.source.open("rb") as source:
                result = await self._engine.run(self._model, source, options, on_delta=heard)
        except APIError as exc:
            raise TranscriptionFailed(exc.message) from exc
        except OSError as exc:
            raise TranscriptionFailed(f"cannot read it: {exc.strerror or exc}") from exc
        except Exception as exc:  # the engine's own failure: this file's, not the run's
            log.exception("transcribing %s failed", job.source)
            raise TranscriptionFailed(f"{type(exc).__name__}: {exc}") from exc
        transcript = result.transcript
        words = options.word_timestamps
        body = verbose_json(transcript, result.model, options.task, words=words)
        return Result(transcript, body)

    async def close(self) -> None:
        """Stop the engine once its model calls in progress have returned (a process that
        exits during one aborts)."""
        await asyncio.to_thread(self._engine.shutdown)


async def _in_thread(work: Callable[[], None]) -> None:
    """``work`` on a daemon thread: Ctrl-C while a model loads need not wait for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    threading.Thread(target=run, name="load-model", daemon=True).start()
    await done


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
