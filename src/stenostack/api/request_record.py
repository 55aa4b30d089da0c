"""The metrics of one transcription request, whatever path it came by, and the one mapping
from how it ended to what its metrics (and a client told in-band) say."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from stenostack.errors import APIError, ClientDisconnected
from stenostack.metrics import EngineMetrics

log = logging.getLogger(__name__)


def reported_error(error: BaseException) -> APIError:
    """The API error that stands for ``error``: itself, the client having gone for cancelled
    work, or a generic server error (whose details are for the log, not the client)."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, asyncio.CancelledError):
        return ClientDisconnected()
    return APIError("The transcription failed on the server.", code="internal_error")


class RequestRecord:
    """The metrics of one request, written once, when its outcome is known: the first of
    :meth:`succeeded` and :meth:`failed` to be called wins."""

    def __init__(self, metrics: EngineMetrics, endpoint: str) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        self.model = ""  # only served names become label values, so cardinality stays bounded
        self.started = time.perf_counter()
        self._finished = False

    def succeeded(self, audio_seconds: float) -> None:
        if self._finish(200, ""):
            self.metrics.audio_seconds.labels(self.endpoint, self.model).inc(audio_seconds)

    def failed(self, error: BaseException) -> None:
        reported = reported_error(error)
        written = self._finish(reported.status_code, reported.code or reported.error_type)
        if written and isinstance(reported, ClientDisconnected):
            # The client's doing: one quiet line, never a traceback.
            log.info("%s: the client closed the connection before the answer", self.endpoint)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record any exception that escapes the block as this request's failure."""
        try:
            yield
        except BaseException as exc:
            self.failed(exc)
            raise

    def _finish(self, status: int, code: str) -> bool:
        """Write the request's metrics unless they are written already; say whether."""
        if self._finished:
            return False
        self._finished = True
        labels = (self.endpoint, self.model, str(status))
        self.metrics.requests.labels(*labels).inc()
        if status >= 400:
            self.metrics.errors.labels(*labels, code).inc()
        self.metrics.latency.labels(self.endpoint, self.model).observe(
            time.perf_counter() - self.started
        )
        return True
