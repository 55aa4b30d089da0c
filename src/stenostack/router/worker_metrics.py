"""One ``/metrics`` for all of the router's worker processes (``--workers N``).

The parent makes a private directory and names it in ``PROMETHEUS_MULTIPROC_DIR`` before
any worker starts, so every worker's prometheus_client keeps its values in files there
(its multiprocess mode); whichever worker takes a scrape adds them all up. Counters of a
worker that exited stay counted; its live gauges are dropped (:func:`worker_exited`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A fresh directory for this run's workers, named in the environment they inherit;
    removed, with the environment restored, when the run ends."""
    path = tempfile.mkdtemp(prefix="stenostack-router-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(path: str, pid: int) -> None:
    """A worker is gone (replaced or retired): its live gauges no longer count."""
    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class WorkersCollector:
    """All workers' metrics, merged; the gauges in ``per_backend`` only for ``backends``
    (the shared files cannot forget a backend that discovery dropped)."""

    def __init__(self, path: str, per_backend: Iterable[str], backends: set[str]) -> None:
        self._merged = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]
        self._per_backend = set(per_backend)
        self._backends = backends

    def collect(self) -> Iterator[Metric]:
        for metric in self._merged.collect():  # type: ignore[no-untyped-call]
            if metric.name in self._per_backend:
                metric.samples = [
                    s for s in metric.samples if s.labels["backend"] in self._backends
                ]
            yield metric
