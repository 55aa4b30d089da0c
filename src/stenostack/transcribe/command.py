"""``stenostack transcribe`` and ``stenostack models``: the run, its exit status, Ctrl-C.

Exit status: 0 when every file was transcribed (or skipped, its output being there
already), 1 when any failed, 2 when the command could not start (no inputs, a bad option, a
model that cannot load, a server that cannot be reached), 130 on Ctrl-C. Ctrl-C abandons
the file in progress (nothing is written for it), keeps the finished ones and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from stenostack.config import EngineSettings
from stenostack.models.base import Task, TranscriptionOptions
from stenostack.transcribe.arguments import api_key, base_url
from stenostack.transcribe.failures import TranscriptionFailed, UsageError
from stenostack.transcribe.inputs import Job, find_jobs
from stenostack.transcribe.outputs import (
    EXTENSIONS,
    OutputFormat,
    Result,
    render,
    write_atomically,
)
from stenostack.transcribe.progress import Progress, make_progress

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run_models(args: argparse.Namespace) -> int:
    from stenostack.transcribe.catalog import local_rows, server_rows, table

    if args.server is None:
        sys.stdout.write(table(("NAME", "FAMILY", "NOTES"), local_rows()))
        return EXIT_OK
    try:
        cards = asyncio.run(_server_models(args.server, api_key(args)))
    except UsageError as exc:
        print(f"stenostack: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    sys.stdout.write(table(("NAME", "MODEL", "NOTES"), server_rows(cards)))
    return EXIT_OK


async def _server_models(url: str, key: str | None) -> list[dict[str, Any]]:
    import aiohttp

    from stenostack.transcribe.remote import list_models, session_for

    session: aiohttp.ClientSession = session_for(key)
    async with session:
        return await list_models(session, base_url(url))


class Transcriber(Protocol):
    """The model in this process (``local``) or a server (``remote``)."""

    async def transcribe(self, job: Job, on_progress: Callable[[float], None]) -> Result: ...

    async def close(self) -> None: ...


@dataclass
class Tally:
    """What a run did so far."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0

    def line(self, elapsed: float) -> str:
        return (
            f"{self.done} transcribed, {self.skipped} skipped, {self.failed} failed "
            f"({self.audio_seconds:.1f} s of audio in {elapsed:.1f} s)"
        )


def run_transcribe(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="stenostack: %(levelname)s: %(message)s")
    try:
        return asyncio.run(_transcribe(args))
    except KeyboardInterrupt:  # before the event loop could take Ctrl-C over
        print("stenostack: interrupted before any file was done", file=sys.stderr)
        return EXIT_INTERRUPTED


async def _transcribe(args: argparse.Namespace) -> int:
    started = time.monotonic()
    fmt: OutputFormat = args.output_format
    try:
        jobs = find_jobs(args.paths, EXTENSIONS[fmt], args.output_dir)
    except UsageError as exc:
        print(f"stenostack: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    main = asyncio.current_task()
    assert main is not None
    interrupted = _on_ctrl_c(main)
    run = _Run(fmt, args.overwrite)
    try:
        await run.all(jobs, lambda: _start(args))
    except UsageError as exc:
        run.close()
        print(f"stenostack: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except asyncio.CancelledError:
        if not interrupted():
            raise
        run.close()
        current = run.current
        abandoned = f"; {current.label} abandoned, nothing written for it" if current else ""
        summary = run.tally.line(time.monotonic() - started)
        print(f"interrupted: {summary}{abandoned}", file=sys.stderr)
        return EXIT_INTERRUPTED
    run.close()
    print(run.tally.line(time.monotonic() - started), file=sys.stderr)
    return EXIT_FAILED if run.tally.failed else EXIT_OK


class _Run:
    """One run over the files, one at a time; its tally and the file in progress stay
    readable when it is cut short."""

    def __init__(self, fmt: OutputFormat, overwrite: bool) -> None:
        self.fmt: OutputFormat = fmt
        self.overwrite = overwrite
        self.tally = Tally()
        self.current: Job | None = None
        self.progress: Progress | None = None

    async def all(self, jobs: list[Job], start: Callable[[], Awaitable[Transcriber]]) -> None:
        """Skip the files whose output exists (unless overwriting), start the transcriber
        only if any is left, and transcribe those in turn."""
        todo = [job for job in jobs if self.overwrite or not job.output.exists()]
        transcriber = await start() if todo else None
        try:
            lengths = [await asyncio.to_thread(_probe_seconds, job.source) for job in todo]
            self.progress = progress = make_progress(sum(s or 0.0 for s in lengths), len(todo))
            for job in jobs:
                if job not in todo:
                    progress.file_skipped(job)
                    self.tally.skipped += 1
            for job, seconds in zip(todo, lengths, strict=True):
                assert transcriber is not None
                self.current = job
                progress.file_started(job, seconds)
                await self.one(transcriber, job, progress)
                self.current = None
        finally:
            if transcriber is not None:
                await transcriber.close()

    async def one(self, transcriber: Transcriber, job: Job, progress: Progress) -> None:
        try:
            result = await transcriber.transcribe(job, progress.file_progress)
            write_atomically(job.output, render(result, self.fmt))
        except TranscriptionFailed as exc:
            progress.file_failed(job, str(exc))
            self.tally.failed += 1
        except OSError as exc:
            progress.file_failed(job, f"cannot write {job.output}: {exc.strerror or exc}")
            self.tally.failed += 1
        else:
            progress.file_done(job, result.transcript.duration)
            self.tally.done += 1
            self.tally.audio_seconds += result.transcript.duration

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None


def _on_ctrl_c(main: asyncio.Task[Any]) -> Callable[[], bool]:
    """Ctrl-C cancels ``main`` (a second one exits at once); returns whether it came."""
    pressed = False

    def on_signal() -> None:
        nonlocal pressed
        if pressed:
            os._exit(EXIT_INTERRUPTED)
        pressed = True
        main.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, on_signal)
    return lambda: pressed


def _probe_seconds(path: Path) -> float | None:
    """The file's length from its header (None: it does not say, or it is not audio)."""
    from stenostack.audio.decode import probe_audio

    try:
        with path.open("rb") as source:
            return probe_audio(source, float("inf")).declared_seconds
    except Exception:
        return None


async def _start(args: argparse.Namespace) -> Transcriber:
    """The in-process engine or the server; raises :class:`UsageError`."""
    task: Task = args.task
    words = bool(args.word_timestamps)
    if args.server is not None:
        from stenostack.transcribe.remote import RemoteTranscriber

        return await RemoteTranscriber.connect(
            base_url(args.server), api_key(args), args.model, task, args.language, words
        )
    from stenostack.transcribe.local import LocalTranscriber

    settings = EngineSettings(
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
        beam_size=args.beam_size,
        diarization=False,
    )
    options = TranscriptionOptions(
        task=task,
        language=args.language,
        word_timestamps=words,
        segment_timestamps=True,  # both ways give the same text: the server's verbose_json
    )
    return await LocalTranscriber.start(settings, args.model, options)
