"""The metrics of one transcription request, whatever path it came by."""

from __future__ import annotations

import time

from stenostack.metrics import EngineMetrics


class RequestRecord:
    """The metrics of one request, written once, when its outcome is known."""

    def __init__(self, metrics: EngineMetrics, endpoint: str) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        self.model = ""  # only served names become label values, so cardinality stays bounded
        self.started = time.perf_counter()

    def audio(self, seconds: float) -> None:
        self.metrics.audio_seconds.labels(self.endpoint, self.model).inc(seconds)

    def finish(self, status: int, code: str) -> None:
        labels = (self.endpoint, self.model, str(status))
        self.metrics.requests.labels(*labels).inc()
        if status >= 400:
            self.metrics.errors.labels(*labels, code).inc()
        self.metrics.latency.labels(self.endpoint, self.model).observe(
            time.perf_counter() - self.started
        )
