"""Engine settings, from the command line or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from stenostack.http.connection_limits import ConnectionSettings
from stenostack.models.sources import DEFAULT_ALIASES, DEFAULT_MODELS


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_list(name: str) -> list[str]:
    """A comma-separated variable's non-empty entries."""
    return [entry.strip() for entry in os.environ.get(name, "").split(",") if entry.strip()]


@dataclass
class EngineSettings(ConnectionSettings):
    """The engine's settings; the connection limits' come from :class:`ConnectionSettings`."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Each entry is a bundled name, a local directory or a hub id, optionally "name=source".
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "auto"  # auto | int8 | int8_float16 | float16 | float32 | ...
    cpu_threads: int = 0  # 0: one per core
    # Decoding, as faster-whisper names it (models/base.py DecodingSettings).
    beam_size: int | None = None  # None: the device's default (models/registry.py)
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    max_upload_mb: float = field(
        default_factory=lambda: _env_float("STENOSTACK_MAX_UPLOAD_MB", 500.0)
    )
    max_audio_seconds: float = field(
        default_factory=lambda: _env_float("STENOSTACK_MAX_AUDIO_SECONDS", 3 * 3600.0)
    )
    # Backpressure: seconds of audio each model may hold admitted and unfinished (429 past it).
    max_queued_audio_seconds: float = field(
        default_factory=lambda: _env_float("STENOSTACK_MAX_QUEUED_AUDIO_SECONDS", 7200.0)
    )
    # How long a batch may wait for requests still being decoded to join it.
    batch_gather_ms: float = 10.0
    # The largest realtime WebSocket message accepted (uvicorn's ws_max_size).
    realtime_max_message_bytes: int = 16 * 1024 * 1024
    # Realtime sessions open at once (more are refused); seconds a session may go without a
    # client message; bytes of events that may wait for a client not reading (then closed).
    realtime_max_sessions: int = 64
    realtime_idle_timeout_s: float = 120.0
    realtime_max_pending_event_bytes: int = 1024 * 1024
    # Keys callers must send as "Authorization: Bearer KEY" (none: open). Every key from
    # STENOSTACK_API_KEYS, --api-key and --api-key-file is accepted.
    api_keys: list[str] = field(default_factory=lambda: _env_list("STENOSTACK_API_KEYS"))
    # Speaker diarization: whether to load its model, from where (None: the pinned
    # packages), and its segmentation's threads.
    diarization: bool = True
    diarization_dir: Path | None = None
    diarization_threads: int = 1
    log_level: str = "info"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)
