"""Start either server under uvicorn with the connection limits of :mod:`.protocol`."""

from __future__ import annotations

import logging
import sys
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


def run_server(app: Any, limits: ConnectionLimits, **options: Any) -> None:
    """``uvicorn.run`` with :class:`LimitedHttpToolsProtocol`; ``app`` must be an import
    string when ``options`` ask for more than one worker."""
    config = LimitedConfig(app, limits=limits, http=LimitedHttpToolsProtocol, **options)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
