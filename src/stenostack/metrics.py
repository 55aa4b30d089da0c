"""Prometheus metrics of one engine process, kept in their own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


class EngineMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stenostack_requests",
            "HTTP requests to the audio endpoints, by endpoint, model and status.",
            ["endpoint", "model", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "stenostack_request_errors",
            "Audio requests answered with an error, by endpoint, model, status and error code.",
            ["endpoint", "model", "status", "code"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "stenostack_audio_seconds",
            "Seconds of audio transcribed or translated.",
            ["endpoint", "model"],
            registry=self.registry,
        )
        self.running = Gauge(
            "stenostack_requests_running",
            "Requests whose audio a model is working on now.",
            ["model"],
            registry=self.registry,
        )
        self.waiting = Gauge(
            "stenostack_requests_waiting",
            "Requests decoded and queued for a model, none of their work started yet.",
            ["model"],
            registry=self.registry,
        )
        self.queued_audio_seconds = Gauge(
            "stenostack_queued_audio_seconds",
            "Seconds of audio admitted and not yet finished (queued or running), per model. "
            "New requests are refused with 429 past the configured bound.",
            ["model"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "stenostack_batch_size",
            "Requests' steps run together in one model call, by kind of call.",
            ["model", "step"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "stenostack_request_duration_seconds",
            "Time from request received to response ready.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "stenostack_queue_duration_seconds",
            "Time a decoded request waited for its first model call.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "stenostack_real_time_factor",
            "Model processing time divided by audio duration (lower is faster).",
            ["model"],
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.decodes = Counter(
            "stenostack_decodes",
            "Uploaded files whose decoding started (a file refused from its header or by the "
            "queue bound is never decoded).",
            registry=self.registry,
        )
        self.decodes_waiting = Gauge(
            "stenostack_decodes_waiting",
            "Files (and realtime turns) waiting for a decode thread; the shortest go first.",
            registry=self.registry,
        )
        self.realtime_sessions = Gauge(
            "stenostack_realtime_sessions",
            "Realtime transcription sessions (WebSocket connections) open now.",
            registry=self.registry,
        )
        self.realtime_client_errors = Counter(
            "stenostack_realtime_client_errors",
            "Error events sent to realtime clients for messages they sent, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.diarization_duration = Histogram(
            "stenostack_diarization_duration_seconds",
            "Time the diarization model worked on one request's speech (waiting excluded).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.diarization_audio_seconds = Counter(
            "stenostack_diarization_audio_seconds",
            "Seconds of speech diarized (speech only: long silences are cut before).",
            registry=self.registry,
        )
        self.diarizations_waiting = Gauge(
            "stenostack_diarizations_waiting",
            "Requests whose diarization waits for the diarization thread.",
            registry=self.registry,
        )
        self.realtime_interim_passes = Counter(
            "stenostack_realtime_interim_passes",
            "Passes over realtime turns still being spoken, for interim results, by model and "
            "outcome (completed, failed, cancelled). Not requests: a turn counts as one "
            "request, when it is committed.",
            ["model", "outcome"],
            registry=self.registry,
        )
