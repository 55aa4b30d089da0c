"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from stenostack.api.formats import render
from stenostack.api.forms import parse_audio_form, read_form
from stenostack.engine.engine import Engine
from stenostack.errors import APIError, ClientDisconnected
from stenostack.metrics import EngineMetrics
from stenostack.models.base import Task

router = APIRouter()
ResultT = TypeVar("ResultT")


@router.post("/v1/audio/transcriptions", summary="Transcribe audio into text (OpenAI-compatible)")
async def create_transcription(request: Request) -> Response:
    return await _handle(request, "transcribe", "transcriptions")


@router.post(
    "/v1/audio/translations", summary="Translate audio into English text (OpenAI-compatible)"
)
async def create_translation(request: Request) -> Response:
    return await _handle(request, "translate", "translations")


async def _handle(request: Request, task: Task, endpoint: str) -> Response:
    engine: Engine = request.app.state.engine
    metrics: EngineMetrics = request.app.state.metrics
    started = time.perf_counter()
    model_label = ""  # only served names become label values, so cardinality stays bounded
    status, code = 500, "internal_error"
    try:
        form = await read_form(request)
        try:
            audio_request = parse_audio_form(form, task)
            model_label = engine.registry.root_name(audio_request.model)
            result = await _unless_disconnected(
                request,
                engine.run(audio_request.model, audio_request.file.file, audio_request.options),
            )
        finally:
            await form.close()
        response = render(audio_request, result.transcript, result.model, task)
        metrics.audio_seconds.labels(endpoint, model_label).inc(result.transcript.duration)
        status, code = 200, ""
        return response
    except APIError as exc:
        status, code = exc.status_code, exc.code or exc.error_type
        raise
    finally:
        metrics.requests.labels(endpoint, model_label, str(status)).inc()
        if status >= 400:
            metrics.errors.labels(endpoint, model_label, str(status), code).inc()
        metrics.latency.labels(endpoint, model_label).observe(time.perf_counter() - started)


async def _unless_disconnected(request: Request, work: Awaitable[ResultT]) -> ResultT:
    """Await ``work``; if the client hangs up first, cancel it (and its queued model work)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ClientDisconnected()


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
