"""The router's config file, read again when it changes, applied without a restart.

A changed file is loaded over the settings in force (keys it does not name keep their
values); if it does not load, the error is logged and nothing changes. Backends that leave
the list finish the requests they have: those hold their backend, not the list.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from stenostack.router.settings import RouterSettings, SettingsError, load_config_file

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


class ConfigReloader:
    def __init__(
        self, path: Path, settings: RouterSettings, apply: Callable[[RouterSettings], None]
    ) -> None:
        self.path = path
        self.settings = settings  # the settings in force, which ``apply`` changes in place
        self.apply = apply
        self._seen = self._fingerprint()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            fingerprint = self._fingerprint()
            if fingerprint == self._seen:
                continue
            self._seen = fingerprint
            try:
                fresh = load_config_file(self.path, copy.deepcopy(self.settings))
            except SettingsError as exc:
                log.error("config file changed but was not applied: %s", exc)
                continue
            self.apply(fresh)
            log.info("config file %s reloaded", self.path)

    def _fingerprint(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return ""
