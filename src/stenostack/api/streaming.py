"""``stream=true``: a transcript as OpenAI's server-sent events, piece by piece.

The wire form is what the official SDK's ``Stream`` reads: ``data: {json}`` frames of
``transcript.text.delta`` events as each piece of text is final (with speakers, each
followed by its ``transcript.text.segment``, once its speaker is known too), exactly one
``transcript.text.done`` with the whole text and usage, then ``data: [DONE]``. A stream of
``verbose_json`` (an extension OpenAI does not have) also follows each delta with its
segment, times on the file and words where asked, and its last event carries the whole
verbose transcript: what a subtitle writer or a progress bar needs. The response
starts only once the engine has decoded and admitted the audio (with growing speech, its
first windows), so bad audio and a full queue are still ordinary 4xx answers (and a router
may retry them elsewhere); a failure after that (with growing speech, also a file found
truncated or too long further on) is sent in the stream as ``data: {"error": {...}}``,
which the SDK raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from stenostack.api.formats import diarized_segment, timed_segment, verbose_json
from stenostack.api.forms import AudioRequest
from stenostack.api.request_record import RequestRecord, reported_error
from stenostack.engine.engine import EngineResult
from stenostack.errors import APIError, ClientDisconnected
from stenostack.models.base import Task, TextDelta

log = logging.getLogger(__name__)

# A comment line this often keeps idle proxies from closing a stream whose next piece is
# still being decoded (the SDK ignores comments).
KEEPALIVE_SECONDS = 10.0


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def segment_event(delta: TextDelta, request: AudioRequest) -> dict[str, Any] | None:
    """The ``transcript.text.segment`` event that follows ``delta``, if its stream has them:
    ``diarized_json`` (once the segment's speaker is known) and ``verbose_json`` (an
    extension: each segment, with its words where they were asked for)."""
    segment = delta.segment
    if segment is None:
        return None
    if request.response_format == "diarized_json" and segment.speaker is not None:
        return diarized_segment(segment)
    if request.response_format == "verbose_json":
        return timed_segment(segment, words="word" in request.granularities)
    return None


def delta_event(delta: TextDelta, segment: dict[str, Any] | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "transcript.text.delta", "delta": delta.text}
    if segment is not None:
        event["segment_id"] = segment["id"]
    if delta.logprobs is not None:
        event["logprobs"] = [asdict(item) for item in delta.logprobs]
    return event


def done_event(result: EngineResult, request: AudioRequest, task: Task) -> dict[str, Any]:
    """The last event; for ``verbose_json`` (an extension) it carries the whole verbose
    transcript too, so a client renders subtitles from the stream alone."""
    transcript = result.transcript
    event: dict[str, Any] = {"type": "transcript.text.done", "text": transcript.text}
    if transcript.logprobs is not None:
        event["logprobs"] = [asdict(item) for item in transcript.logprobs]
    if task == "transcribe":
        if transcript.language:
            event["languages"] = [{"code": transcript.language}]
        event["usage"] = transcript.tokens.as_openai()
    if request.response_format == "verbose_json":
        words = "word" in request.granularities
        event.update(verbose_json(transcript, result.model, task, words=words))
    return event


class TranscriptEventStream(StreamingResponse):
    """The events of one transcription in flight; it owns the work and ends it.

    The work is cancelled when the client goes away (Starlette cancels the body when it
    sees ``http.disconnect``), and ``record`` gets the outcome either way.
    """

    def __init__(
        self,
        work: asyncio.Task[EngineResult],
        deltas: asyncio.Queue[TextDelta],
        request: AudioRequest,
        task: Task,
        record: RequestRecord,
    ) -> None:
        self._work = work
        self._record = record
        self._closers: list[Callable[[], Awaitable[None]]] = []
        super().__init__(
            self._events(deltas, request, task),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def close_when_done(self, close: Callable[[], Awaitable[None]]) -> None:
        """Call ``close`` once the work has ended (the upload it may still be reading)."""
        self._closers.append(close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self._work.done():
                self._work.cancel()
            # Also collects the outcome of work that ended unseen as the client left.
            await asyncio.gather(self._work, return_exceptions=True)
            self._record.failed(ClientDisconnected())  # unless the stream ended first
            for close in self._closers:
                await close()

    async def _events(
        self, deltas: asyncio.Queue[TextDelta], request: AudioRequest, task: Task
    ) -> AsyncIterator[bytes]:
        async for delta in self._pieces(deltas):
            if delta is None:
                yield b": keep-alive\n\n"
                continue
            segment = segment_event(delta, request)
            yield sse(delta_event(delta, segment))
            if segment is not None:
                yield sse(segment)
        try:
            result = self._work.result()
        except Exception as exc:
            if not isinstance(exc, APIError):
                log.exception("transcription failed after its stream started")
            self._record.failed(exc)
            yield sse(reported_error(exc).body())
            return
        self._record.succeeded(result.transcript.duration)
        yield sse(done_event(result, request, task))
        yield sse("[DONE]")

    async def _pieces(self, deltas: asyncio.Queue[TextDelta]) -> AsyncIterator[TextDelta | None]:
        """Deltas as they come (None: nothing for a while), until the work and its deltas
        are all done."""
        while not (self._work.done() and deltas.empty()):
            if not deltas.empty():
                yield deltas.get_nowait()
                continue
            waiting = asyncio.ensure_future(deltas.get())
            try:
                await asyncio.wait(
                    {waiting, self._work},
                    timeout=KEEPALIVE_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                yield waiting.result()
            elif not self._work.done():
                yield None
