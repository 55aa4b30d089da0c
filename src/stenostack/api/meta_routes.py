"""Models, liveness, readiness, version and metrics (all but liveness and readiness behind
the API keys, when there are any)."""

from __future__ import annotations

import platform
import time
from typing import Any

import ctranslate2
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stenostack import __version__
from stenostack.errors import MODELS_LOADING_RETRY_S, ModelNotFound, retry_after
from stenostack.http.auth import ApiKeys
from stenostack.http.drain import Drain
from stenostack.models.registry import ModelRegistry

router = APIRouter()
# Liveness and readiness: open even when API keys are required (probes send none).
PROBE_PATHS = ("/health", "/ready")
STARTED = int(time.time())


def _model_card(registry: ModelRegistry, name: str) -> dict[str, Any]:
    root = registry.root_name(name)
    card: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": STARTED,
        "owned_by": "stenostack",
        "root": root,
        "ready": registry.ready,
    }
    model = registry.loaded().get(root)
    if model is not None:
        card["capabilities"] = model.describe()
    return card


@router.get("/v1/models", summary="List the served models and their capabilities")
async def list_models(request: Request) -> dict[str, Any]:
    registry: ModelRegistry = request.app.state.registry
    return {"object": "list", "data": [_model_card(registry, n) for n in registry.served_names()]}


@router.get("/v1/models/{model:path}", summary="Describe one served model")
async def get_model(request: Request, model: str) -> dict[str, Any]:
    registry: ModelRegistry = request.app.state.registry
    if model not in registry.served_names():
        raise ModelNotFound(model, registry.served_names())
    return _model_card(registry, model)


@router.get("/health", summary="Liveness: the process serves HTTP")
async def health(request: Request) -> dict[str, str]:
    # Still alive while draining (a liveness probe must not restart it), but a router's
    # probe reads the status and stops sending work here.
    drain: Drain = request.app.state.drain
    return {"status": "draining" if drain.draining else "ok"}


@router.get("/ready", summary="Readiness: every model is loaded")
async def ready(request: Request) -> JSONResponse:
    registry: ModelRegistry = request.app.state.registry
    keys: ApiKeys = request.app.state.api_keys
    # Open to probes, which send no key; the models and a load error (which may name
    # paths) only to a caller with one.
    detailed = keys.allow(request)
    drain: Drain = request.app.state.drain
    if drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if registry.ready:
        models = {"models": registry.served_names()} if detailed else {}
        return JSONResponse({"status": "ready", **models})
    if registry.load_error:
        error = {"error": registry.load_error} if detailed else {}
        return JSONResponse({"status": "failed", **error}, status_code=503)
    return JSONResponse(
        {"status": "loading"}, status_code=503, headers=retry_after(MODELS_LOADING_RETRY_S)
    )


@router.get("/version", summary="Versions of the server and its inference stack")
async def version() -> dict[str, str]:
    return {
        "version": __version__,
        "ctranslate2": ctranslate2.__version__,
        "python": platform.python_version(),
    }


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
