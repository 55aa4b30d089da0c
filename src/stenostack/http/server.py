"""Start either server under uvicorn with the connection limits of :mod:`.protocol`."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from stenostack.http.connection_limits import (
    ConnectionLimits,
    ConnectionSettings,
    LimitedConfig,
    default_max_connections,
    raise_open_file_limit,
)
from stenostack.http.protocol import LimitedHttpToolsProtocol

log = logging.getLogger(__name__)

# uvicorn's exit status when the server could not start (the port taken, say).
STARTUP_FAILURE = 3


def process_connection_limits(
    settings: ConnectionSettings, *, files_per_connection: int
) -> ConnectionLimits:
    """The limits for this process, after raising its open-file limit as far as allowed.
    ``max_connections`` 0 means: as many as the open-file limit leaves room for, each
    connection holding ``files_per_connection`` descriptors at worst."""
    open_files = raise_open_file_limit()
    derived = default_max_connections(open_files, files_per_connection)
    named = {
        setting.name: getattr(settings, setting.name) for setting in fields(ConnectionSettings)
    }
    limits = ConnectionLimits(**{**named, "max_connections": settings.max_connections or derived})
    if limits.max_connections > derived:
        log.warning(
            "--max-connections %d is more than %d open files leave room for (%d)",
            limits.max_connections,
            open_files,
            derived,
        )
    return limits


class Workers(Multiprocess):
    """uvicorn's supervisor of worker processes, telling ``exited`` of each worker it has
    replaced (one that died) or retired (SIGHUP, SIGTTOU), once."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], exited: Callable[[int], None]
    ) -> None:
        super().__init__(config, sockets)
        self._exited = exited
        self._running: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        # Called on every turn of the supervisor's loop, after signals are handled.
        super().keep_subprocess_alive()
        running = {process.pid for process in self.processes if process.pid is not None}
        for pid in self._running - running:
            self._exited(pid)
        self._running = running


def run_server(
    app: Any,
    limits: ConnectionLimits,
    worker_exited: Callable[[int], None] | None = None,
    **options: Any,
) -> None:
    """``uvicorn.run`` with :class:`LimitedHttpToolsProtocol`; ``app`` must be an import
    string when ``options`` ask for more than one worker, and ``worker_exited`` is told of
    each worker process that is gone while the others serve on."""
    config = LimitedConfig(app, limits=limits, http=LimitedHttpToolsProtocol, **options)
    if config.workers > 1:
        Workers(config, [config.bind_socket()], worker_exited or (lambda _: None)).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
