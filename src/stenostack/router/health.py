"""Active health checks: every backend, on an interval, concurrently, off the request path.

For a model that transcribes, the check is a real, tiny transcription (one spoken word,
bundled with the router) sent with the router's backend key, so a backend whose model is
wedged fails it even though its HTTP server still answers. Other backends (a vLLM text
server) are checked with ``GET /health``. Each round also re-reads ``/v1/models`` (what
the backend serves) and, from an engine, its queued audio for least-load routing. Beside
these rounds, a quick liveness probe (:mod:`.liveness`) finds a frozen backend in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from stenostack.router.backend import Backend
from stenostack.router.backend_checks import BackendChecks
from stenostack.router.liveness import LivenessProbe

log = logging.getLogger(__name__)

HEALTHCHECK_AUDIO = resources.files("stenostack.router").joinpath("healthcheck.wav").read_bytes()
QUEUED_AUDIO_METRIC = "stenostack_queued_audio_seconds"


class HealthChecker(BackendChecks):
    async def run(self) -> None:
        """Health rounds and liveness probes, each on its own interval, until cancelled."""
        liveness = LivenessProbe(self.pool, self.session, self.settings, self.metrics)
        await asyncio.gather(self._rounds(), liveness.run())

    async def _rounds(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self.settings.health.interval_s)

    async def check_all(self) -> None:
        backends = self.pool.all()
        await asyncio.gather(*(self.check(backend) for backend in backends))

    async def check(self, backend: Backend) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.health.timeout_s)
        try:
            backend.models = await self._models(backend, timeout)
            await self._probe(backend, timeout)
            await self._read_load(backend, timeout)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if backend.healthy:
                log.warning("backend %s failed its health check: %s", backend.url, exc or type(exc))
            backend.healthy = False
        else:
            if not backend.healthy:
                log.info("backend %s is healthy", backend.url)
            backend.healthy = True
            if backend.ejections_in_a_row and time.monotonic() >= backend.ejected_until:
                backend.readmit()
        self.metrics.backend_healthy.labels(backend.url).set(int(backend.available()))
        self.metrics.backend_load.labels(backend.url).set(backend.load())

    async def _models(
        self, backend: Backend, timeout: aiohttp.ClientTimeout
    ) -> dict[str, dict[str, Any]]:
        async with self.session.get(
            f"{backend.url}/v1/models", headers=self.headers, timeout=timeout
        ) as response:
            response.raise_for_status()
            body = await response.json()
        return {entry["id"]: entry for entry in body.get("data", []) if "id" in entry}

    async def _probe(self, backend: Backend, timeout: aiohttp.ClientTimeout) -> None:
        audio_model = next(
            (
                model_id
                for model_id, entry in backend.models.items()
                if (entry.get("capabilities") or {}).get("transcription")
            ),
            None,
        )
        if audio_model is None:
            async with self.session.get(
                f"{backend.url}/health", headers=self.headers, timeout=timeout
            ) as response:
                response.raise_for_status()
            return
        form = aiohttp.FormData()
        form.add_field("model", audio_model)
        form.add_field("response_format", "text")
        form.add_field("file", HEALTHCHECK_AUDIO, filename="healthcheck.wav")
        async with self.session.post(
            f"{backend.url}/v1/audio/transcriptions",
            data=form,
            headers=self.headers,
            timeout=timeout,
        ) as response:
            if response.status == 429:  # busy, not broken
                return
            response.raise_for_status()
            await response.read()

    async def _read_load(self, backend: Backend, timeout: aiohttp.ClientTimeout) -> None:
        try:
            async with self.session.get(
                f"{backend.url}/metrics", headers=self.headers, timeout=timeout
            ) as response:
                if response.status != 200:
                    return
                text = await response.text()
        except aiohttp.ClientError:
            return
        queued = 0.0
        for family in text_string_to_metric_families(text):
            if family.name == QUEUED_AUDIO_METRIC:
                queued = sum(sample.value for sample in family.samples)
        backend.reported_queued_audio_s = queued
        backend.inflight_at_report_s = backend.inflight_audio_s
