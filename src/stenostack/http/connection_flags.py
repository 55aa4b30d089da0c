"""The command-line flags of :class:`ConnectionLimits`, the same on ``serve`` and ``router``."""

from __future__ import annotations

import argparse
from dataclasses import fields

from stenostack.http.connection_limits import ConnectionSettings

# The settings these flags set, by the same names on EngineSettings and RouterSettings.
CONNECTION_SETTINGS = tuple(setting.name for setting in fields(ConnectionSettings))


def add_connection_arguments(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """Add the flags; without defaults they parse to None, so that a config file's value is
    kept unless the flag is given."""
    defaults = ConnectionSettings()

    def default(value: float) -> float | None:
        return value if with_defaults else None

    parser.add_argument(
        "--header-timeout-s",
        type=float,
        default=default(defaults.header_timeout_s),
        help="Seconds a client may take to send a request's headers, from opening the "
        f"connection or its next request's first byte (default {defaults.header_timeout_s:g}).",
    )
    parser.add_argument(
        "--body-timeout-s",
        type=float,
        default=default(defaults.body_timeout_s),
        help="Seconds a request body may stop arriving before it is answered 408 "
        f"(default {defaults.body_timeout_s:g}).",
    )
    parser.add_argument(
        "--keep-alive-timeout-s",
        type=float,
        default=default(defaults.keep_alive_timeout_s),
        help="Seconds an idle connection is kept open between requests "
        f"(default {defaults.keep_alive_timeout_s:g}).",
    )
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=default(defaults.max_header_bytes),
        help="Largest request line and headers together; larger is answered 431 "
        f"(default {defaults.max_header_bytes}).",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=default(defaults.max_connections),
        help="Connections held at once; past it a new one is answered 503 at once "
        "(default 0: as many as the open-file limit, raised to its maximum at start-up, "
        "leaves room for).",
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=default(defaults.drain_timeout_s),
        help="On SIGTERM, seconds to finish the requests in flight after the port is closed "
        f"(default {defaults.drain_timeout_s:g}).",
    )
    parser.add_argument(
        "--drain-notice-s",
        type=float,
        default=default(defaults.drain_notice_s),
        help="On SIGTERM, seconds to keep the port open first, answering new work 503 with "
        "Retry-After and /ready 503 while load balancers stop sending (a Kubernetes pod's "
        f"endpoints take a few seconds to go; default {defaults.drain_notice_s:g}). "
        "A second SIGTERM or Ctrl-C skips it.",
    )
