"""A FAKE backend: the engine's HTTP API with no model, and a vLLM-like chat endpoint.

For the router's benchmark it reads each upload whole and answers at once, or, with
``--seconds-per-audio-second``, after a delay that grows with the audio (estimated as 16-bit
16 kHz mono PCM from the upload's size), one request at a time like a busy engine. That
isolates what the router itself costs, and lets backends of unequal speed be compared.
With ``--chat-model NAME`` it serves ``/v1/chat/completions`` instead (JSON, or SSE when
``stream`` is true), standing in for a vLLM server, which cannot run here.

    python tests/fake_backend.py --port 9001 [--seconds-per-audio-second 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "whisper-tiny.en"
BYTES_PER_AUDIO_SECOND = 32_000


def create_app(seconds_per_audio_second: float, chat_model: str | None = None) -> Starlette:
    busy = asyncio.Semaphore(1)
    queued = {"seconds": 0.0}

    async def transcribe(request: Request) -> Response:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        if seconds_per_audio_second <= 0:
            return JSONResponse({"text": "ok"})
        audio = size / BYTES_PER_AUDIO_SECOND
        queued["seconds"] += audio
        try:
            async with busy:
                await asyncio.sleep(audio * seconds_per_audio_second)
        finally:
            queued["seconds"] -= audio
        return JSONResponse({"text": "ok"})

    async def models(_: Request) -> Response:
        if chat_model:  # as vLLM lists a text model: no capabilities
            entry: dict[str, object] = {"id": chat_model, "object": "model", "owned_by": "vllm"}
        else:
            entry = {"id": MODEL, "object": "model", "capabilities": {"transcription": True}}
        return JSONResponse({"object": "list", "data": [entry]})

    async def chat(request: Request) -> Response:
        body = await request.json()
        words = ["Hello", " from", " the", " fake", " model."]
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(words)}
            return JSONResponse({"object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "message": message,
                                              "finish_reason": "stop"}]})  # fmt: skip

        async def events() -> AsyncIterator[bytes]:
            for word in words:
                chunk = {"object": "chat.completion.chunk", "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": word}}]}  # fmt: skip
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(_: Request) -> Response:
        return PlainTextResponse(
            "# TYPE stenostack_queued_audio_seconds gauge\n"
            f'stenostack_queued_audio_seconds{{model="{MODEL}"}} {queued["seconds"]}\n'
        )

    return Starlette(
        routes=[
            Route("/v1/audio/transcriptions", transcribe, methods=["POST"]),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health),
            Route("/ready", health),
            Route("/metrics", metrics),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake engine for router benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds-per-audio-second", type=float, default=0.0)
    parser.add_argument("--chat-model", default=None)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.seconds_per_audio_second, args.chat_model),
        host=args.host,
        port=args.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


if __name__ == "__main__":
    main()
