"""The router's ASGI application: OpenAI's paths, routed by model to healthy backends.

A :class:`Router` holds what the router knows while it runs: the settings in force, the
pool of backends (from every discovery source) and their health, the balancer, the callers'
keys and limits, and the proxy. Its methods are the routes; :meth:`Router.reload` applies a
changed config file while requests are in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from stenostack import __version__
from stenostack.errors import APIError, InvalidApiKey, InvalidRequest, ModelNotFound, UploadTooLarge
from stenostack.http.auth import presented_key
from stenostack.http.drain import Drain
from stenostack.http.errors import exception_handlers
from stenostack.http.refusal import refuse
from stenostack.http.request_id import RequestIdMiddleware
from stenostack.playground.routes import playground_routes
from stenostack.router.backend import Backend
from stenostack.router.balancer import Balancer
from stenostack.router.body import (
    ReplayBudget,
    RequestBody,
    estimated_audio_seconds,
    multipart_boundary,
)
from stenostack.router.callers import CallerKey, Callers
from stenostack.router.config_reload import ConfigReloader
from stenostack.router.health import HealthChecker
from stenostack.router.kubernetes_discovery import PodWatcher
from stenostack.router.metrics import RouterMetrics
from stenostack.router.pool import BackendPool
from stenostack.router.proxy import Outgoing, Proxy
from stenostack.router.realtime_proxy import REALTIME_PATH, RealtimeProxy
from stenostack.router.settings import RouterSettings

log = logging.getLogger(__name__)

AUDIO_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
# Other OpenAI paths with a JSON body naming the model, proxied as they are.
JSON_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/audio/speech",
    "/v1/rerank",
    "/v1/score",
)
MAX_JSON_BODY = 32 * 1024 * 1024


def create_router_app(
    settings: RouterSettings, workers_metrics_dir: str | None = None
) -> Starlette:
    """``workers_metrics_dir``: where the workers of ``--workers N`` share their metrics."""
    return Router(settings, workers_metrics_dir).app()


class Router:
    def __init__(self, settings: RouterSettings, workers_metrics_dir: str | None = None) -> None:
        self.settings = settings  # changed in place by reload(), so every part sees it
        self.metrics = RouterMetrics(workers_metrics_dir)
        self.pool = BackendPool()
        self.balancer = Balancer(settings.routing)
        self.callers = Callers(settings.api_keys)
        self.replay_budget = ReplayBudget(settings.retries.replay_budget_bytes)
        # On SIGTERM the router keeps relaying through its notice (only /ready says it is
        # leaving, so its own load balancer stops sending), then finishes what it holds.
        self.drain = Drain(settings.drain_notice_s)
        # Made at startup, with the upstream HTTP session.
        self._proxy: Proxy | None = None
        self._realtime: RealtimeProxy | None = None
        self.set_backends("static", settings.backends)

    def app(self) -> Starlette:
        # Plain Starlette: a proxy has no use for FastAPI's parameter machinery on its hot path.
        routes = [
            *(Route(path, self.audio, methods=["POST"]) for path in AUDIO_PATHS),
            *(Route(path, self.json_api, methods=["POST"]) for path in JSON_PATHS),
            Route("/v1/models", self.list_models),
            Route("/v1/models/{model:path}", self.get_model),
            WebSocketRoute(REALTIME_PATH, self.realtime),
            Route("/health", self.health),
            Route("/ready", self.ready),
            Route("/metrics", self.prometheus_metrics),
            Route("/version", self.version),
            *playground_routes(),
        ]
        return Starlette(
            routes=routes,
            middleware=[Middleware(RequestIdMiddleware)],
            exception_handlers=exception_handlers("router"),
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        self.drain.install()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60)
        async with aiohttp.ClientSession(connector=connector) as session:
            self._proxy = Proxy(self.pool, self.balancer, session, self.settings, self.metrics)
            self._realtime = RealtimeProxy(
                self.pool, self.balancer, session, self.settings, self.metrics
            )
            checker = HealthChecker(self.pool, session, self.settings, self.metrics)
            watcher = self._start_kubernetes_discovery(checker)
            await checker.check_all()  # know the backends before the first request
            tasks = [asyncio.create_task(checker.run())]
            if self.settings.config_file is not None:
                reloader = ConfigReloader(self.settings.config_file, self.settings, self.reload)
                tasks.append(asyncio.create_task(reloader.run()))
            try:
                yield
            finally:
                if watcher is not None:
                    watcher.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def proxy(self) -> Proxy:
        if self._proxy is None:
            raise RuntimeError("the router's lifespan has not started")
        return self._proxy

    def reload(self, fresh: RouterSettings) -> None:
        """Apply a reloaded config file. Requests in flight keep the backend they have."""
        waiting = self.settings.take_live(fresh)
        if waiting:
            log.warning("config file: changes to %s apply at the next start", ", ".join(waiting))
        self.balancer.policy = self.settings.routing
        self.callers = Callers(self.settings.api_keys)
        self.replay_budget.resize(self.settings.retries.replay_budget_bytes)
        self.set_backends("static", self.settings.backends)

    def set_backends(self, source: str, urls: list[str]) -> list[Backend]:
        """A discovery source's current URLs; returns the backends that are new."""
        added, removed = self.pool.set_source(source, urls)
        for url in removed:
            self.metrics.forget_backend(url)
        if added or removed:
            log.info("%s backends: %d (+%d, -%d)", source, len(urls), len(added), len(removed))
        return added

    def _start_kubernetes_discovery(self, checker: HealthChecker) -> PodWatcher | None:
        """Engine pods join the static backends as they come, when discovery is on."""
        if not self.settings.kubernetes.enabled:
            return None
        loop = asyncio.get_running_loop()
        checking: set[asyncio.Task[None]] = set()

        def apply(urls: list[str]) -> None:
            # New pods are checked now rather than at the next round.
            for backend in self.set_backends("kubernetes", urls):
                task = loop.create_task(checker.check(backend))
                checking.add(task)
                task.add_done_callback(checking.discard)

        def from_thread(urls: list[str]) -> None:
            loop.call_soon_threadsafe(apply, urls)

        watcher = PodWatcher(self.settings.kubernetes, from_thread)
        watcher.start()
        return watcher

    # -- routes ---------------------------------------------------------------------------

    async def audio(self, request: Request) -> Response:
        caller = self._authenticate(request)
        boundary = multipart_boundary(request.headers.get("content-type", ""))
        if boundary is None:
            raise InvalidRequest(
                "Expected a multipart/form-data body with a 'file' field.",
                code="invalid_content_type",
            )
        settings = self.settings
        body = RequestBody(
            request.receive,
            settings.max_upload_bytes,
            settings.retries.replay_buffer_bytes,
            self.replay_budget,
        )
        model: str | None = None
        try:
            declared = int(request.headers.get("content-length", "0") or 0)
            if declared > settings.max_upload_bytes:
                raise UploadTooLarge(settings.max_upload_bytes)
            self.callers.admit(caller, estimated_audio_seconds(declared))
            model = (await body.read_form_head(boundary, "model")).get("model")
            if not model:
                raise InvalidRequest("Missing required parameter: 'model'.", param="model")
            outgoing = Outgoing(
                model,
                body,
                request.headers.get(settings.affinity_header),
                estimated_audio_seconds(declared or body.received),
            )
            return await self.proxy.forward(request, outgoing)
        except APIError as error:  # answered by the router: the client's fault, or no backend
            self.proxy.refused(model, error)
            raise
        finally:
            # Safe once a response has begun: a spooled head is sent before anything else.
            body.close()

    async def json_api(self, request: Request) -> Response:
        self.callers.admit(self._authenticate(request), 0.0)
        body = RequestBody(request.receive, MAX_JSON_BODY, MAX_JSON_BODY)
        raw = await body.read_all()
        try:
            model = json.loads(raw).get("model")
        except (ValueError, AttributeError):
            model = None
        if not isinstance(model, str) or not model:
            raise InvalidRequest("Expected a JSON body with a 'model'.", param="model")
        affinity_key = request.headers.get(self.settings.affinity_header)
        return await self.proxy.forward(request, Outgoing(model, body, affinity_key, 0.0))

    async def list_models(self, request: Request) -> Response:
        self._authenticate(request)
        return JSONResponse({"object": "list", "data": self.pool.models()})

    async def get_model(self, request: Request) -> Response:
        self._authenticate(request)
        model = request.path_params["model"]
        served = self.pool.models()
        for entry in served:
            if entry["id"] == model:
                return JSONResponse(entry)
        raise ModelNotFound(model, [entry["id"] for entry in served])

    async def realtime(self, websocket: WebSocket) -> None:
        if self._realtime is None:
            raise RuntimeError("the router's lifespan has not started")
        try:
            self.callers.admit(self._authenticate(websocket), 0.0)
            upstream = await self._realtime.connect(websocket)
        except APIError as error:  # the handshake is answered with the error, as HTTP
            self.proxy.refused(websocket.query_params.get("model"), error)
            await refuse(websocket.scope, websocket.receive, websocket.send, error)
            return
        await self._realtime.relay(websocket, upstream)

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "draining" if self.drain.draining else "ok"})

    async def ready(self, request: Request) -> Response:
        if self.drain.draining:
            return JSONResponse({"ready": False, "status": "draining"}, 503)
        available = [b.url for b in self.pool.all() if b.available()]
        status = 200 if available else 503
        # Open to probes, which send no key; which backends are up only to a caller with one.
        backends = {"backends": available} if self._authenticated(request) else {}
        return JSONResponse({"ready": bool(available), **backends}, status)

    async def prometheus_metrics(self, request: Request) -> Response:
        self._authenticate(request)  # Prometheus sends it: authorization.credentials
        text = self.metrics.exposition(backend.url for backend in self.pool.all())
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def version(self, _: Request) -> Response:
        return JSONResponse({"stenostack": __version__, "role": "router"})

    def _authenticate(self, connection: HTTPConnection) -> CallerKey | None:
        return self.callers.authenticate(presented_key(connection))

    def _authenticated(self, connection: HTTPConnection) -> bool:
        """Whether the caller may see what keys protect (always, on an open router)."""
        try:
            self._authenticate(connection)
        except InvalidApiKey:
            return False
        return True
