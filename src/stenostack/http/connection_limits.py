"""How long a client may take, and how much it may send, before a server lets it go; and
how many connections a process may hold, given its open-file limit."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

import uvicorn

# File descriptors every process keeps apart from connections: model files, logs, the
# listening socket, the event loop's own, library threads.
RESERVED_FILES = 128


@dataclass(frozen=True)
class ConnectionLimits:
    # From a connection's opening (or a kept-alive one's next byte) to its headers' end.
    header_timeout_s: float = 10.0
    # Longest wait for the next piece of a request body the app is reading (then 408).
    body_timeout_s: float = 30.0
    # Longest a connection may sit between a response and the next request.
    keep_alive_timeout_s: float = 5.0
    # The request line and every header together (then 431).
    max_header_bytes: int = 64 * 1024
    # Connections held at once; past it a new one is answered 503 at once.
    max_connections: int = 1024
    # On SIGTERM the server stops listening and finishes the requests it holds: for at most
    # this long (under Kubernetes' default grace period of 30 s), then it cancels the rest.
    drain_timeout_s: float = 25.0
    # Before that, on SIGTERM, the server keeps its port open this long answering new work
    # 503 (and /ready 503) while load balancers learn that it is leaving (see http/drain.py).
    drain_notice_s: float = 0.0


@dataclass
class ConnectionSettings:
    """The limits as either server's settings name them (both inherit these fields, so the
    flags, the router's config file and the environment all use the same names);
    ``max_connections`` 0 means as many as the open-file limit leaves room for."""

    header_timeout_s: float = ConnectionLimits.header_timeout_s
    body_timeout_s: float = ConnectionLimits.body_timeout_s
    keep_alive_timeout_s: float = ConnectionLimits.keep_alive_timeout_s
    max_header_bytes: int = ConnectionLimits.max_header_bytes
    max_connections: int = 0
    drain_timeout_s: float = ConnectionLimits.drain_timeout_s
    drain_notice_s: float = ConnectionLimits.drain_notice_s


class LimitedConfig(uvicorn.Config):
    """uvicorn's configuration carrying :class:`ConnectionLimits` to each connection's
    protocol; it travels to worker processes with the rest of the configuration."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **options: Any) -> None:
        # uvicorn types the keep-alive timeout as int, but only hands it to call_later.
        keep_alive: Any = limits.keep_alive_timeout_s
        drain: Any = limits.drain_timeout_s
        super().__init__(
            app, timeout_keep_alive=keep_alive, timeout_graceful_shutdown=drain, **options
        )
        self.connection_limits = limits


def raise_open_file_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the limit now in
    force (the soft one, unchanged, where the system refuses)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def default_max_connections(open_files: int, files_per_connection: int) -> int:
    """The most connections that fit in ``open_files`` when each may hold
    ``files_per_connection`` descriptors (its socket, a spooled upload, an upstream socket),
    after :data:`RESERVED_FILES`; at least a handful, so a tiny limit still serves."""
    return max((open_files - RESERVED_FILES) // files_per_connection, 16)
