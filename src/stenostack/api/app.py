"""The engine's ASGI application."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Scope

from stenostack import __version__
from stenostack.api import audio_routes, meta_routes
from stenostack.api.errors import engine_exception_handlers
from stenostack.api.limits import UploadLimitMiddleware
from stenostack.api.realtime import routes as realtime_routes
from stenostack.api.realtime.limits import RealtimeLimits, SessionSlots
from stenostack.config import EngineSettings
from stenostack.engine.diarization_lane import DiarizationLane
from stenostack.http.auth import ApiKeyMiddleware, ApiKeys
from stenostack.http.drain import Drain, RefuseWhileDraining
from stenostack.http.request_id import RequestIdMiddleware
from stenostack.models.registry import ModelRegistry
from stenostack.playground.routes import open_paths, playground_routes
from stenostack.serving import build_engine

log = logging.getLogger(__name__)


def create_app(settings: EngineSettings, registry: ModelRegistry) -> FastAPI:
    engine = build_engine(settings, registry)
    metrics, diarization = engine.metrics, engine.diarization
    drain = Drain(settings.drain_notice_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        drain.install()
        # Load in the background: /health answers at once, /ready once the models are in.
        loading = asyncio.get_running_loop().run_in_executor(
            None,
            _load_or_stop,
            registry,
            diarization if settings.diarization else None,
            _page_url(settings),
        )
        yield
        await asyncio.to_thread(engine.shutdown)
        await asyncio.wait([loading], timeout=1)

    app = FastAPI(
        title="stenostack",
        version=__version__,
        lifespan=lifespan,
        exception_handlers=engine_exception_handlers(),
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.drain = drain
    app.state.realtime_limits = RealtimeLimits.from_settings(settings)
    app.state.realtime_slots = SessionSlots(settings.realtime_max_sessions)
    app.include_router(audio_routes.router)
    app.include_router(meta_routes.router)
    app.include_router(realtime_routes.router)
    app.router.routes.extend(playground_routes())
    app.state.api_keys = api_keys = ApiKeys(settings.api_keys)
    # The last added runs first: a request id for every answer, no new work while draining,
    # then the key before the body.
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(
        ApiKeyMiddleware, keys=api_keys, open_paths=(*meta_routes.PROBE_PATHS, *open_paths())
    )
    app.add_middleware(RefuseWhileDraining, drain=drain, is_work=_is_work)
    app.add_middleware(RequestIdMiddleware)
    return app


def _is_work(scope: Scope) -> bool:
    """Transcriptions, translations and realtime sessions: what a draining engine refuses
    (every POST and WebSocket); probes, metrics and model lists are still answered."""
    return scope["type"] == "websocket" or scope.get("method") == "POST"


def _page_url(settings: EngineSettings) -> str:
    """Where a browser on this machine finds the playground."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/"


def _load_or_stop(
    registry: ModelRegistry, diarization: DiarizationLane | None, page_url: str
) -> None:
    try:
        if diarization is not None:  # first, so that /ready means diarization is ready too
            diarization.load()
        registry.load()
        log.info("models ready: %s", ", ".join(registry.served_names()))
        log.info("try them in a browser: %s", page_url)
    except Exception:
        log.exception("loading the models failed; stopping the server")
        os.kill(os.getpid(), signal.SIGTERM)
