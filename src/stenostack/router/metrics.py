"""The router's Prometheus metrics: names of their own (``stenostack_router_*``), label
values bounded by the backends and models discovery found, nothing kept per request.

With ``--workers N`` every worker writes its values to files in a directory shared by all
(prometheus_client's multiprocess mode, :mod:`.worker_metrics`), and ``/metrics`` in any
worker answers for them all. Each gauge says how the workers' values add up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stenostack.router.worker_metrics import WorkersCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


# Gauges labelled by backend, dropped when discovery drops the backend.
PER_BACKEND_GAUGES = (
    "stenostack_router_requests_inflight",
    "stenostack_router_backend_healthy",
    "stenostack_router_backend_load_audio_seconds",
)


class RouterMetrics:
    def __init__(self, workers_dir: str | None = None) -> None:
        """``workers_dir``: the directory the workers share (prometheus_client must have
        been imported with ``PROMETHEUS_MULTIPROC_DIR`` naming it); None for one process."""
        self.workers_dir = workers_dir
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "stenostack_router_requests",
            "Requests answered, by backend (none: answered by the router), model and status.",
            ["backend", "model", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "stenostack_router_errors",
            "Failed attempts and refusals, by backend, model and reason.",
            ["backend", "model", "reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "stenostack_router_retries",
            "Attempts sent to another backend after one failed, by the backend that failed.",
            ["backend", "model", "reason"],
            registry=self.registry,
        )
        self.inflight = Gauge(
            "stenostack_router_requests_inflight",
            "Requests being proxied now, by backend.",
            ["backend"],
            registry=self.registry,
            multiprocess_mode="livesum",  # each worker's own requests; a dead one has none
        )
        self.waiting = Gauge(
            "stenostack_router_requests_waiting",
            "Requests held for a backend to become available (cold start), by model.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.upload_bytes = Counter(
            "stenostack_router_upload_bytes",
            "Request body bytes sent to backends.",
            ["backend", "model"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "stenostack_router_audio_seconds",
            "Audio seconds proxied, estimated from upload size (16-bit 16 kHz mono PCM).",
            ["backend", "model"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stenostack_router_request_duration_seconds",
            "Time from request received to the last byte of the response.",
            ["backend", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_byte = Histogram(
            "stenostack_router_time_to_first_byte_seconds",
            "Time from request received to the backend's response headers.",
            ["backend", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backend_healthy = Gauge(
            "stenostack_router_backend_healthy",
            "1 if the backend passes health checks and is not ejected, else 0.",
            ["backend"],
            registry=self.registry,
            # Every worker checks and ejects on its own: 1 only if all of them route there.
            multiprocess_mode="livemin",
        )
        self.backend_load = Gauge(
            "stenostack_router_backend_load_audio_seconds",
            "Audio seconds queued and running on the backend, as least-load routing sees it.",
            ["backend"],
            registry=self.registry,
            # Each worker's value is the engine's whole queue as read at its last health
            # check (other workers' requests included), so adding them up would count that
            # queue once per worker: the freshest reading stands for them all.
            multiprocess_mode="livemostrecent",
        )
        self.ejections = Counter(
            "stenostack_router_backend_ejections",
            "Times a backend was taken out of rotation after failures on live traffic.",
            ["backend"],
            registry=self.registry,
        )

        self.unresponsive = Counter(
            "stenostack_router_backend_unresponsive",
            "Times a backend gave no answer to its liveness probe in time and was taken out "
            "of rotation, its requests in flight cancelled.",
            ["backend"],
            registry=self.registry,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: label lookups are a hot path here, and
        the label values are bounded by the backends and models discovery found."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def exposition(self, backends: Iterable[str]) -> bytes:
        """The text ``/metrics`` answers: this process's metrics, or all workers' with
        ``workers_dir``, where ``backends`` (those in the pool) bound the per-backend gauges."""
        if self.workers_dir is None:
            return generate_latest(self.registry)
        collector = WorkersCollector(self.workers_dir, PER_BACKEND_GAUGES, set(backends))
        registry = CollectorRegistry()
        registry.register(collector)
        return generate_latest(registry)

    def forget_backend(self, url: str) -> None:
        """Drop a removed backend's gauges, so long runs with churn stay bounded."""
        if self.workers_dir is not None:
            # Values in the shared files cannot be removed; exposition() leaves them out.
            return
        for gauge in (self.inflight, self.backend_healthy, self.backend_load):
            with contextlib.suppress(KeyError):
                gauge.remove(url)
        self._children = {k: v for k, v in self._children.items() if url not in k[1]}
