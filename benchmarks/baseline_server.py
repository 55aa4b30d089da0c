"""The baseline the engine is measured against: one request, one faster-whisper call.

This is how speaches-style servers serve Whisper: each request runs its own
``WhisperModel.transcribe`` on a worker thread, so concurrent requests share the model
but never a batch. It answers just enough of the OpenAI API for the benchmark
(``POST /v1/audio/transcriptions`` with ``json`` output, ``GET /ready``).

    python -m benchmarks.baseline_server --model-dir DIR --cpu-threads 2 --port 8001
"""

from __future__ import annotations

import argparse
import io
import os

import uvicorn
from fastapi import FastAPI, Request
from faster_whisper import WhisperModel
from faster_whisper.vad import VadOptions
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

# The engine's defaults, so both sides do the same work: greedy decoding with Whisper's
# temperature ladder, conditioning on previous text, and the same voice activity detection.
VAD = VadOptions(threshold=0.5, min_silence_duration_ms=2000, speech_pad_ms=400)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()

    model = WhisperModel(
        args.model_dir, device="cpu", compute_type="int8", cpu_threads=args.cpu_threads
    )
    app = FastAPI()

    def transcribe(data: bytes, language: str | None) -> str:
        segments, _info = model.transcribe(
            io.BytesIO(data),
            language=language,
            beam_size=1,
            best_of=5,
            condition_on_previous_text=True,
            vad_filter=True,
            vad_parameters=VAD,
        )
        return " ".join(segment.text.strip() for segment in segments)

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> dict[str, str]:
        async with request.form() as form:
            upload = form["file"]
            assert isinstance(upload, UploadFile)
            data = await upload.read()
            language = form.get("language")
        text = await run_in_threadpool(
            transcribe, data, language if isinstance(language, str) else None
        )
        return {"text": text}

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
