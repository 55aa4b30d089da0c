"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from stenostack.api.formats import render
from stenostack.api.forms import AudioRequest, parse_audio_form, read_form
from stenostack.api.request_record import RequestRecord
from stenostack.api.streaming import TranscriptEventStream
from stenostack.engine.engine import Engine, EngineResult
from stenostack.http.disconnect import unless_disconnected
from stenostack.models.base import Task, TextDelta

router = APIRouter()


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
    record = RequestRecord(request.app.state.metrics, endpoint)
    with record.recording():
        form = await read_form(request)
        streaming = False
        try:
            audio_request = parse_audio_form(form, task)
            record.model = engine.registry.root_name(audio_request.model)
            if audio_request.stream:
                # The stream records the outcome when it ends, and closes the upload then:
                # the engine may still be decoding it while the first words are sent.
                stream = await _open_stream(request, engine, audio_request, task, record)
                stream.close_when_done(form.close)
                streaming = True
                return stream
            result = await unless_disconnected(
                request,
                engine.run(
                    audio_request.model,
                    audio_request.file.file,
                    audio_request.options,
                    speakers=audio_request.speakers,
                ),
            )
        finally:
            if not streaming:
                await form.close()
        response = render(audio_request, result.transcript, result.model, task)
        record.succeeded(result.transcript.duration)
        return response


async def _open_stream(
    request: Request, engine: Engine, audio_request: AudioRequest, task: Task, record: RequestRecord
) -> TranscriptEventStream:
    """Start the work; answer with its event stream once the audio is decoded and admitted.

    Until then a failure is an ordinary error response (a 400 for bad audio, a 429 for a
    full queue), which a client or router can act on before any event was sent.
    """
    deltas: asyncio.Queue[TextDelta] = asyncio.Queue()
    admitted = asyncio.Event()
    work = asyncio.ensure_future(
        engine.run(
            audio_request.model,
            audio_request.file.file,
            audio_request.options,
            on_admitted=admitted.set,
            on_delta=deltas.put_nowait,
            speakers=audio_request.speakers,
        )
    )
    try:
        await unless_disconnected(request, _admitted_or_done(admitted, work))
    except BaseException:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise
    if work.done():
        work.result()  # raises the request's error, if it failed before being admitted
    return TranscriptEventStream(work, deltas, audio_request, task, record)


async def _admitted_or_done(admitted: asyncio.Event, work: asyncio.Task[EngineResult]) -> None:
    waiting = asyncio.ensure_future(admitted.wait())
    try:
        await asyncio.wait({waiting, work}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
