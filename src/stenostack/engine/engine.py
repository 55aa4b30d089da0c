"""The engine: runs each request's decode and model work on worker threads.

Decoding (PyAV) runs on a pool sized to the cores. Each model has one worker thread that
owns its calls: CTranslate2 already spreads one call over the cores, and one call at a time
keeps a model's memory and latency predictable. Requests wait for that worker in order.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from stenostack.audio.decode import DecodedAudio, decode_audio
from stenostack.engine.pipeline import transcribe_audio
from stenostack.metrics import EngineMetrics
from stenostack.models.base import SpeechToTextModel, Transcript, TranscriptionOptions
from stenostack.models.registry import ModelRegistry


@dataclass
class EngineResult:
    transcript: Transcript
    model: SpeechToTextModel


class Engine:
    def __init__(
        self, registry: ModelRegistry, metrics: EngineMetrics, max_audio_seconds: float
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.max_audio_seconds = max_audio_seconds
        self._decoders = ThreadPoolExecutor(
            max_workers=max(os.cpu_count() or 1, 1), thread_name_prefix="decode"
        )
        self._workers: dict[str, ThreadPoolExecutor] = {}

    def model_for(
        self, name: str, options: TranscriptionOptions
    ) -> tuple[str, SpeechToTextModel, TranscriptionOptions]:
        """Resolve a public model name and check the options against that model."""
        root = self.registry.root_name(name)
        model = self.registry.get(root)
        return root, model, model.validate(options)

    async def run(
        self, model_name: str, source: BinaryIO, options: TranscriptionOptions
    ) -> EngineResult:
        root, model, options = self.model_for(model_name, options)
        loop = asyncio.get_running_loop()
        audio: DecodedAudio = await loop.run_in_executor(
            self._decoders,
            decode_audio,
            source,
            model.audio_config.sample_rate,
            self.max_audio_seconds,
        )
        waiting = self.metrics.waiting.labels(root)
        waiting.inc()
        queued_at = time.perf_counter()

        started_work = False

        def work() -> Transcript:
            nonlocal started_work
            started_work = True
            waiting.dec()
            started = time.perf_counter()
            self.metrics.queue_time.labels(root).observe(started - queued_at)
            with self.metrics.running.labels(root).track_inprogress():
                transcript = transcribe_audio(model, audio, options)
            if audio.duration > 0:
                rtf = (time.perf_counter() - started) / audio.duration
                self.metrics.real_time_factor.labels(root).observe(rtf)
            return transcript

        try:
            transcript = await loop.run_in_executor(self._worker(root), work)
        except asyncio.CancelledError:
            if not started_work:  # dropped from the queue before it ran
                waiting.dec()
            raise
        return EngineResult(transcript, model)

    def _worker(self, root: str) -> ThreadPoolExecutor:
        if root not in self._workers:
            self._workers[root] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"model-{root}"
            )
        return self._workers[root]

    def shutdown(self) -> None:
        self._decoders.shutdown(wait=False, cancel_futures=True)
        for worker in self._workers.values():
            worker.shutdown(wait=False, cancel_futures=True)
