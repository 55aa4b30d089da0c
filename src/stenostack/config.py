"""Engine settings, from the command line or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from stenostack.models.sources import DEFAULT_ALIASES, DEFAULT_MODELS


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass
class EngineSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Each entry is a bundled name, a local directory or a hub id, optionally "name=source".
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "auto"  # auto | int8 | int8_float16 | float16 | float32 | ...
    cpu_threads: int = 0  # 0: one per core
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
    log_level: str = "info"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)
