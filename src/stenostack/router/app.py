"""The router's ASGI application: OpenAI's paths, routed by model to healthy backends."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stenostack import __version__
from stenostack.errors import InvalidRequest, UploadTooLarge
from stenostack.http.errors import exception_handlers
from stenostack.http.request_id import RequestIdMiddleware
from stenostack.router.balancer import Balancer
from stenostack.router.body import ReplayBudget, RequestBody, multipart_boundary
from stenostack.router.callers import CallerKey, Callers
from stenostack.router.config_reload import ConfigReloader
from stenostack.router.health import HealthChecker
from stenostack.router.kubernetes_discovery import PodWatcher
from stenostack.router.metrics import RouterMetrics
from stenostack.router.pool import BackendPool
from stenostack.router.proxy import BYTES_PER_AUDIO_SECOND, Outgoing, Proxy
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


def create_router_app(settings: RouterSettings) -> Starlette:
    metrics = RouterMetrics()
    pool = BackendPool()
    pool.set_source("static", settings.backends)
    balancer = Balancer(settings.routing)
    replay_budget = ReplayBudget(settings.retries.replay_budget_bytes)
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60)
        async with aiohttp.ClientSession(connector=connector) as session:
            checker = HealthChecker(pool, session, settings, metrics)
            state["proxy"] = Proxy(pool, balancer, session, settings, metrics)
            discovery = _start_discovery(settings, pool, checker, metrics)
            await checker.check_all()  # know the backends before the first request
            tasks = [asyncio.create_task(checker.run())]
            if settings.config_file is not None:
                reloader = ConfigReloader(settings.config_file, settings, apply_settings)
                tasks.append(asyncio.create_task(reloader.run()))
            yield
            if discovery is not None:
                discovery.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def proxy() -> Proxy:
        return state["proxy"]  # type: ignore[return-value]

    live = {"callers": Callers(settings.api_keys)}

    def authorize(request: Request) -> CallerKey | None:
        return live["callers"].authenticate(request.headers.get("authorization", ""))

    def apply_settings(fresh: RouterSettings) -> None:
        """A reloaded config file: what can change while requests are in flight."""
        for name in ("routing", "api_keys", "backend_api_key", "max_upload_mb", "timeouts",
                     "retries", "health", "outlier", "backends"):  # fmt: skip
            setattr(settings, name, getattr(fresh, name))
        balancer.policy = settings.routing
        live["callers"] = Callers(settings.api_keys)
        _, removed = pool.set_source("static", settings.backends)
        for url in removed:
            metrics.forget_backend(url)

    async def audio(request: Request) -> Response:
        caller = authorize(request)
        boundary = multipart_boundary(request.headers.get("content-type", ""))
        if boundary is None:
            raise InvalidRequest(
                "Expected a multipart/form-data body with a 'file' field.",
                code="invalid_content_type",
            )
        body = RequestBody(
            request.receive,
            settings.max_upload_bytes,
            settings.retries.replay_buffer_bytes,
            replay_budget,
        )
        try:
            declared = int(request.headers.get("content-length", "0") or 0)
            if declared > settings.max_upload_bytes:
                raise UploadTooLarge(settings.max_upload_bytes)
            live["callers"].admit(caller, declared / BYTES_PER_AUDIO_SECOND)
            fields = await body.read_form_head(boundary, "model")
            model = fields.get("model")
            if not model:
                raise InvalidRequest("Missing required parameter: 'model'.", param="model")
            size = declared or body.received
            outgoing = Outgoing(
                model,
                body,
                request.headers.get(settings.affinity_header),
                size / BYTES_PER_AUDIO_SECOND,
            )
            return await proxy().forward(request, outgoing)
        finally:
            # Safe once a response has begun: a spooled head is sent before anything else.
            body.close()

    async def json_api(request: Request) -> Response:
        live["callers"].admit(authorize(request), 0.0)
        body = RequestBody(request.receive, MAX_JSON_BODY, MAX_JSON_BODY)
        raw = await body.read_all()
        try:
            model = json.loads(raw).get("model")
        except (ValueError, AttributeError):
            model = None
        if not isinstance(model, str) or not model:
            raise InvalidRequest("Expected a JSON body with a 'model'.", param="model")
        outgoing = Outgoing(model, body, request.headers.get(settings.affinity_header), 0.0)
        return await proxy().forward(request, outgoing)

    async def list_models(request: Request) -> Response:
        authorize(request)
        return JSONResponse({"object": "list", "data": pool.models()})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        available = [b.url for b in pool.all() if b.available()]
        status = 200 if available else 503
        return JSONResponse({"ready": bool(available), "backends": available}, status)

    async def prometheus_metrics(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def version(_: Request) -> Response:
        return JSONResponse({"stenostack": __version__, "role": "router"})

    # Plain Starlette: a proxy has no use for FastAPI's parameter machinery on its hot path.
    routes = [
        *(Route(path, audio, methods=["POST"]) for path in AUDIO_PATHS),
        *(Route(path, json_api, methods=["POST"]) for path in JSON_PATHS),
        Route("/v1/models", list_models),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", prometheus_metrics),
        Route("/version", version),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=exception_handlers("router"),
        lifespan=lifespan,
    )
    return app


def _start_discovery(
    settings: RouterSettings, pool: BackendPool, checker: HealthChecker, metrics: RouterMetrics
) -> PodWatcher | None:
    """Kubernetes discovery, when enabled: pods join the static backends as they come."""
    if not settings.kubernetes.enabled:
        return None
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def apply(urls: list[str]) -> None:
        added, removed = pool.set_source("kubernetes", urls)
        for url in removed:
            metrics.forget_backend(url)
        log.info("discovered %d endpoints (+%d, -%d)", len(urls), len(added), len(removed))
        for backend in added:  # check new pods now rather than at the next round
            task = loop.create_task(checker.check(backend))
            pending.add(task)
            task.add_done_callback(pending.discard)

    def from_thread(urls: list[str]) -> None:
        loop.call_soon_threadsafe(apply, urls)

    watcher = PodWatcher(settings.kubernetes, from_thread)
    watcher.start()
    return watcher
