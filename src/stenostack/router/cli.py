"""``stenostack router``: its command-line options and how it starts."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

from stenostack.http.connection_flags import CONNECTION_SETTINGS, add_connection_arguments
from stenostack.http.logs import configure_logging
from stenostack.http.server import process_connection_limits, run_server
from stenostack.router.settings import (
    ROUTING_POLICIES,
    RouterSettings,
    SettingsError,
    load_config_file,
    settings_from_json,
    settings_to_json,
)

SETTINGS_ENV = "STENOSTACK_ROUTER_SETTINGS_JSON"


def add_router_command(commands: Any) -> None:
    router = commands.add_parser(
        "router", help="Run the router: one OpenAI-compatible front door for many engines."
    )
    defaults = RouterSettings()
    router.add_argument("--host", default=None, help=f"default {defaults.host}")
    router.add_argument("--port", type=int, default=None, help=f"default {defaults.port}")
    router.add_argument(
        "--backend",
        dest="backends",
        action="append",
        metavar="URL",
        help="An engine or vLLM server, e.g. http://10.0.0.5:8000; repeat for more.",
    )
    router.add_argument("--config", type=Path, help="A YAML file with any of the settings.")
    router.add_argument("--routing", choices=ROUTING_POLICIES, default=None)
    router.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        help="A key callers must send as 'Authorization: Bearer KEY'; repeat for more "
        "(env STENOSTACK_ROUTER_API_KEYS, comma-separated).",
    )
    router.add_argument(
        "--backend-api-key",
        default=None,
        help="The router's own key to the backends (env STENOSTACK_BACKEND_API_KEY).",
    )
    router.add_argument("--max-upload-mb", type=float, default=None)
    router.add_argument(
        "--realtime-max-message-bytes",
        type=int,
        default=None,
        help="Largest realtime WebSocket message passed either way "
        f"(default {defaults.realtime_max_message_bytes}).",
    )
    router.add_argument(
        "--liveness-interval-s",
        type=float,
        default=None,
        help=f"How often each backend's GET /health is probed "
        f"(default {defaults.health.liveness_interval_s:g}).",
    )
    router.add_argument(
        "--liveness-timeout-s",
        type=float,
        default=None,
        help="A backend silent this long is taken out of rotation and its requests in "
        f"flight retried elsewhere (default {defaults.health.liveness_timeout_s:g}).",
    )
    router.add_argument(
        "--cold-start-model",
        dest="cold_start_models",
        action="append",
        metavar="NAME",
        help="A model no backend serves yet but one will (an engine scaled to zero): its "
        "requests wait like those of a served model with no backend available, instead of "
        "a 404; repeat for more.",
    )
    router.add_argument(
        "--cold-start-wait-s",
        type=float,
        default=None,
        help="How long a request waits for a backend to become available before it is "
        f"answered 503 (default {defaults.cold_start.wait_s:g}: at once).",
    )
    router.add_argument(
        "--k8s-label-selector",
        default=None,
        help="Discover engine pods with this label selector (turns Kubernetes discovery on).",
    )
    router.add_argument("--k8s-namespace", default=None)
    router.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Router processes sharing the port, to use more than one core (default 1). "
        "/metrics answers for all of them; each checks the backends and ejects failing "
        "ones on its own, and counts per-key rate limits on its own (so a key may get up "
        "to N times its limits).",
    )
    router.add_argument(
        "--log-level", default=None, choices=["critical", "error", "warning", "info", "debug"]
    )
    add_connection_arguments(router, with_defaults=False)


def router_settings(args: argparse.Namespace) -> RouterSettings:
    """Defaults, then the config file, then the environment, then the command line."""
    settings = RouterSettings()
    if args.config is not None:
        load_config_file(args.config, settings)
        settings.config_file = args.config
    if keys := os.environ.get("STENOSTACK_ROUTER_API_KEYS"):
        settings.api_keys = [key.strip() for key in keys.split(",") if key.strip()]
    if key := os.environ.get("STENOSTACK_BACKEND_API_KEY"):
        settings.backend_api_key = key
    for name in (
        "host", "port", "routing", "backend_api_key", "max_upload_mb", "log_level", "workers",
        "realtime_max_message_bytes",
        *CONNECTION_SETTINGS,
    ):  # fmt: skip
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    if args.backends:
        settings.backends = args.backends
    for name in ("liveness_interval_s", "liveness_timeout_s"):
        if getattr(args, name) is not None:
            setattr(settings.health, name, getattr(args, name))
    if args.k8s_label_selector:
        settings.kubernetes.enabled = True
        settings.kubernetes.label_selector = args.k8s_label_selector
    if args.k8s_namespace:
        settings.kubernetes.namespace = args.k8s_namespace
    if args.api_keys:
        settings.api_keys = args.api_keys
    if args.cold_start_models:
        settings.cold_start.models = args.cold_start_models
    if args.cold_start_wait_s is not None:
        settings.cold_start.wait_s = args.cold_start_wait_s
    return settings


def run_router(args: argparse.Namespace) -> int:
    from stenostack.router.app import create_router_app
    from stenostack.router.worker_metrics import shared_metrics_dir, worker_exited

    try:
        settings = router_settings(args)
    except SettingsError as exc:
        print(f"stenostack router: error: {exc}", file=sys.stderr)
        return 2
    if not settings.backends and not settings.kubernetes.enabled:
        print(
            "stenostack router: error: no backends: pass --backend URL, "
            "--k8s-label-selector SELECTOR, or a --config file",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "loop": "uvloop",
        "access_log": False,
        "ws_max_size": settings.realtime_max_message_bytes,
    }
    # A connection's descriptors at worst: its socket, its spooled body, an upstream socket.
    limits = process_connection_limits(settings, files_per_connection=3)
    if settings.workers > 1:
        # Workers are separate processes: each builds the app from the settings it inherits.
        os.environ[SETTINGS_ENV] = settings_to_json(settings)
        with shared_metrics_dir() as metrics_dir:
            run_server(
                "stenostack.router.cli:app_from_environment",
                limits,
                worker_exited=partial(worker_exited, metrics_dir),
                factory=True,
                workers=settings.workers,
                **options,
            )
    else:
        run_server(create_router_app(settings), limits, **options)
    return 0


def app_from_environment() -> Any:
    """The app of one worker process (see ``--workers``)."""
    from stenostack.router.app import create_router_app
    from stenostack.router.worker_metrics import MULTIPROC_ENV

    settings = settings_from_json(os.environ[SETTINGS_ENV])
    return create_router_app(settings, os.environ[MULTIPROC_ENV])
