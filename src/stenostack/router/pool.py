"""The set of backends discovery has found, and the lookups routing needs."""

from __future__ import annotations

import time
from typing import Any

from stenostack.router.backend import Backend


class BackendPool:
    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._sources: dict[str, list[str]] = {}

    def set_source(self, source: str, urls: list[str]) -> tuple[list[Backend], list[str]]:
        """Set the URLs one discovery source found (static, kubernetes); the pool holds
        the union of all sources. Returns the backends added and the URLs removed."""
        self._sources[source] = list(urls)
        return self.set_urls([url for found in self._sources.values() for url in found])

    def set_urls(self, urls: list[str]) -> tuple[list[Backend], list[str]]:
        """Make the pool hold exactly ``urls``, keeping the state of those it had.
        Returns the backends added and the URLs removed."""
        wanted = list(dict.fromkeys(url.rstrip("/") for url in urls))
        added = [Backend(url) for url in wanted if url not in self._backends]
        removed = [url for url in self._backends if url not in wanted]
        known = {**self._backends, **{backend.url: backend for backend in added}}
        self._backends = {url: known[url] for url in wanted}
        return added, removed

    def all(self) -> list[Backend]:
        return list(self._backends.values())

    def serving(self, model: str) -> list[Backend]:
        """Backends that list ``model`` (healthy or not)."""
        return [b for b in self._backends.values() if model in b.models]

    def available(self, model: str) -> list[Backend]:
        now = time.monotonic()
        return [b for b in self.serving(model) if b.available(now)]

    def models(self) -> list[dict[str, Any]]:
        """The union of what available backends serve, one entry per model id."""
        now = time.monotonic()
        union: dict[str, dict[str, Any]] = {}
        for backend in self._backends.values():
            if backend.available(now):
                for model_id, entry in backend.models.items():
                    union.setdefault(model_id, entry)
        return [union[model_id] for model_id in sorted(union)]
