"""Router settings, from the command line and an optional YAML config file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from stenostack.http.connection_flags import CONNECTION_SETTINGS
from stenostack.http.connection_limits import ConnectionSettings
from stenostack.router.callers import CallerKey

RoutingPolicy = Literal["least_load", "round_robin", "session_affinity"]
ROUTING_POLICIES: tuple[str, ...] = ("least_load", "round_robin", "session_affinity")


@dataclass
class Timeouts:
    connect_s: float = 5.0  # to open a connection to a backend
    first_byte_s: float = 1800.0  # from the request sent to the response's headers
    idle_s: float = 300.0  # between two pieces of a response body


@dataclass
class Retries:
    max_attempts: int = 3  # backends tried for one request, the first included
    max_total_s: float = 60.0  # no retry starts after this long
    # Bytes of request body kept in memory so that a failed attempt can be sent again:
    # at most this much per request, and this much for all requests together. A body
    # that did not fit is retried only if it failed before any of it was sent.
    replay_buffer_bytes: int = 16 * 1024 * 1024
    replay_budget_bytes: int = 48 * 1024 * 1024


@dataclass
class HealthChecks:
    interval_s: float = 2.0
    timeout_s: float = 10.0
    # GET /health, which a busy engine answers at once: a backend that gives no answer for
    # this long is out of rotation and its requests in flight are retried elsewhere.
    liveness_interval_s: float = 1.0
    liveness_timeout_s: float = 2.0


@dataclass
class OutlierEjection:
    consecutive_failures: int = 3  # 5xx answers in a row that eject a backend
    base_ejection_s: float = 2.0  # doubled for each ejection in a row
    max_ejection_s: float = 60.0


@dataclass
class KubernetesDiscovery:
    enabled: bool = False
    namespace: str = "default"
    label_selector: str = "app.kubernetes.io/component=engine"
    port_name: str = "http"  # the container port to use, by name
    port: int = 8000  # used when no container port has that name
    watch_timeout_s: int = 300  # each watch is restarted (after a fresh list) this often
    context: str = ""  # kubeconfig context, outside a cluster


@dataclass
class ColdStart:
    """Requests that arrive while no backend can take them (an engine scaled to zero, or
    still starting) are held for ``wait_s`` until one can, instead of being refused at once.
    ``models`` names models no backend serves yet but one will: they are held too (not
    refused 404), and counted by name while they wait, which is what wakes their engine."""

    models: list[str] = field(default_factory=list)
    wait_s: float = 0.0


@dataclass
class RouterSettings(ConnectionSettings):
    """The router's settings; the limits on connections from callers come from
    :class:`ConnectionSettings` (``max_connections`` is per worker)."""

    host: str = "127.0.0.1"
    port: int = 8080
    backends: list[str] = field(default_factory=list)
    routing: RoutingPolicy = "least_load"
    affinity_header: str = "x-session-id"
    # Keys callers must present (none: open): strings, or mappings with "key" and optional
    # "requests_per_minute" and "audio_minutes_per_hour". The router's own key to the
    # backends is separate, so callers never learn it.
    api_keys: list[Any] = field(default_factory=list)
    backend_api_key: str | None = None
    max_upload_mb: float = 2000.0
    # The largest realtime WebSocket message passed either way (uvicorn's ws_max_size
    # toward callers, aiohttp's max_msg_size toward backends).
    realtime_max_message_bytes: int = 16 * 1024 * 1024
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    health: HealthChecks = field(default_factory=HealthChecks)
    outlier: OutlierEjection = field(default_factory=OutlierEjection)
    kubernetes: KubernetesDiscovery = field(default_factory=KubernetesDiscovery)
    cold_start: ColdStart = field(default_factory=ColdStart)
    log_level: str = "info"
    config_file: Path | None = None  # watched and applied again when it changes
    workers: int = 1  # router processes sharing the port (each keeps its own state)

    # Bound when the router starts (the socket, the processes, the discovery thread, the
    # log set-up, uvicorn's connection limits): a reloaded config file that changes them
    # takes effect at the next start.
    STARTUP_ONLY: ClassVar[frozenset[str]] = frozenset(
        {
            "host",
            "port",
            "workers",
            "kubernetes",
            "log_level",
            "config_file",
            "realtime_max_message_bytes",
            *CONNECTION_SETTINGS,
        }
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    def take_live(self, fresh: RouterSettings) -> list[str]:
        """Take every setting that may change while requests are in flight from ``fresh``,
        in place (the router's parts share this object); return the names of the settings
        that differ but wait for a restart."""
        waiting = []
        for setting in fields(self):
            value = getattr(fresh, setting.name)
            if setting.name not in self.STARTUP_ONLY:
                setattr(self, setting.name, value)
            elif value != getattr(self, setting.name):
                waiting.append(setting.name)
        return waiting


class SettingsError(ValueError):
    pass


def load_config_file(path: Path, settings: RouterSettings) -> RouterSettings:
    """``settings`` updated with the YAML file's keys (the same names, nested)."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"config file {path}: expected a mapping at the top level")
    _apply(settings, document, "")
    for entry in settings.api_keys:
        try:
            CallerKey.parse(entry)
        except ValueError as exc:
            raise SettingsError(f"config file {path}: {exc}") from None
    if settings.routing not in ROUTING_POLICIES:
        raise SettingsError(
            f"routing must be one of {', '.join(ROUTING_POLICIES)}, got {settings.routing!r}"
        )
    return settings


def _apply(target: Any, values: dict[str, Any], prefix: str) -> None:
    known = {f.name: f for f in fields(target)}
    for key, value in values.items():
        if key not in known:
            raise SettingsError(f"unknown config key '{prefix}{key}'")
        current = getattr(target, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise SettingsError(f"config key '{prefix}{key}' must be a mapping")
            _apply(current, value, f"{prefix}{key}.")
        else:
            setattr(target, key, value)


def settings_to_json(settings: RouterSettings) -> str:
    """For worker processes, which rebuild the settings with :func:`settings_from_json`."""
    values = asdict(settings)
    values["config_file"] = str(settings.config_file) if settings.config_file else None
    return json.dumps(values)


def settings_from_json(text: str) -> RouterSettings:
    values = json.loads(text)
    config_file = values.pop("config_file")
    settings = RouterSettings()
    _apply(settings, values, "")
    settings.config_file = Path(config_file) if config_file else None
    return settings
