"""What the router's background checks of its backends work with."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from stenostack.router.headers import backend_authorization
from stenostack.router.metrics import RouterMetrics
from stenostack.router.pool import BackendPool
from stenostack.router.settings import RouterSettings


@dataclass
class BackendChecks:
    """The backends to check, the session to reach them and where to report: the same for
    the health checks (:mod:`.health`) and the liveness probes (:mod:`.liveness`)."""

    pool: BackendPool
    session: aiohttp.ClientSession
    settings: RouterSettings  # the settings in force: a reload changes them in place
    metrics: RouterMetrics

    @property
    def headers(self) -> dict[str, str]:
        """The router's own key to the backends, as the settings in force name it."""
        return backend_authorization(self.settings)
