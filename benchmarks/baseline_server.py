"""The baseline the engine is measured against: one request, one faster-whisper call.

This is how speaches-style servers serve Whisper: each request runs its own
``WhisperModel.transcribe``, so concurrent requests share a model but never a batch. It
answers just enough of the OpenAI API for the benchmark (``POST /v1/audio/transcriptions``
with ``json`` output, ``GET /ready``).

Its layout is ``--processes P`` x ``--cpu-threads T`` (with ``--num-workers W``, faster-whisper's
own ``WhisperModel(num_workers=...)``, for one process):

- one process (``P = 1``): one ``WhisperModel`` in the server process; requests run on a
  thread pool and ``W`` of them may be inside CTranslate2 at once;
- several processes (``P > 1``): one server process hands each request's bytes to a pool of
  ``P`` worker processes, each with its own ``WhisperModel`` of ``T`` threads and one request
  at a time. The pool is one queue, so a free worker always takes the next request (uvicorn's
  ``--workers`` would split connections between processes instead, unevenly).

    python -m benchmarks.baseline_server --model-dir DIR --processes 2 --cpu-threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from faster_whisper import WhisperModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from tests.faster_whisper_baseline import faster_whisper_text

# Each request decodes with the engine's defaults (tests/faster_whisper_baseline.py), so both
# sides do the same work: greedy with Whisper's temperature ladder, conditioning on previous
# text, and the same voice activity detection.
_model: WhisperModel | None = None  # this process's model


def load_model(model_dir: str, cpu_threads: int, num_workers: int) -> None:
    global _model
    _model = WhisperModel(
        model_dir,
        device="cpu",
        compute_type="int8",
        cpu_threads=cpu_threads,
        num_workers=num_workers,
    )
    # The first call of a process is slower; pay for it before the server says ready.
    noise = np.random.default_rng(0).normal(0, 0.01, 16_000).astype(np.float32)
    list(_model.transcribe(noise, language="en", beam_size=1, vad_filter=False)[0])


def transcribe(data: bytes, language: str | None) -> str:
    assert _model is not None, "load_model runs first"
    return faster_whisper_text(_model, data, language)


def _worker_pid() -> int:
    time.sleep(0.2)  # long enough that the pool starts another process for the next one
    return os.getpid()


def _start_worker(model_dir: str, cpu_threads: int) -> None:
    """A pool worker: it leaves with the server (which may be killed before it can shut
    its pool down: left behind, workers of earlier runs would skew later measurements)."""
    parent = os.getppid()

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    load_model(model_dir, cpu_threads, 1)


def start_pool(processes: int, model_dir: str, cpu_threads: int) -> ProcessPoolExecutor:
    """``processes`` workers, each with its model loaded and warm."""
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(model_dir, cpu_threads),
    )
    # The pool starts processes on demand: keep it busy until every one has started.
    pids: set[int] = set()
    while len(pids) < processes:
        pids |= {f.result() for f in [pool.submit(_worker_pid) for _ in range(processes)]}
    return pool


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    if args.processes > 1 and args.num_workers > 1:
        parser.error("--num-workers applies to one process; with several, each runs one call")

    pool: Executor | None = None
    if args.processes > 1:
        pool = start_pool(args.processes, args.model_dir, args.cpu_threads)
    else:
        load_model(args.model_dir, args.cpu_threads, args.num_workers)
    app = FastAPI()

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
        chosen = language if isinstance(language, str) else None
        if pool is None:
            text = await run_in_threadpool(transcribe, data, chosen)
        else:
            text = await asyncio.get_running_loop().run_in_executor(pool, transcribe, data, chosen)
        return {"text": text}

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
