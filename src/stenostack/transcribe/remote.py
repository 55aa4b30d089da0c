"""Transcription through a running engine or router, over its OpenAI-compatible API.

Each file is posted with ``stream=true`` and ``response_format=verbose_json`` (this server's
extension): ``transcript.text.segment`` events tell how far the text is final, and the
``transcript.text.done`` event carries the whole verbose transcript. A server that does not
stream verbose_json (an older engine) is asked again without ``stream``, for the rest of the
run: the same files, with progress only at each file's end. A server that is busy (429) or
still loading its models (503) is asked again when its ``Retry-After`` says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from stenostack.models.base import Task
from stenostack.transcribe.failures import TranscriptionFailed, UsageError
from stenostack.transcribe.inputs import Job
from stenostack.transcribe.outputs import Result, transcript_from_verbose, verbose_body

# Connecting must be quick; a stream sends a keep-alive comment every 10 s, so a read this
# long without a byte means the server is gone.
CONNECT_TIMEOUT_S = 10.0
STREAM_READ_TIMEOUT_S = 120.0
# A busy (429) or loading (503) server's Retry-After is followed this many times, waiting
# at most this long each time.
MAX_RETRIES = 5
MAX_RETRY_WAIT_S = 30.0


class RemoteTranscriber:
    """One server at ``url``; its models are listed once, at the start."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        model: str,
        task: Task,
        language: str | None,
        words: bool,
    ) -> None:
        self._session = session
        self._url = url
        self._model = model
        self._task: Task = task
        self._language = language
        self._words = words
        self._streams = True  # until the server says it does not stream verbose_json

    @classmethod
    async def connect(
        cls,
        url: str,
        api_key: str | None,
        model: str,
        task: Task,
        language: str | None,
        words: bool,
    ) -> RemoteTranscriber:
        """Reach the server at ``url`` (without ``/v1``) and check that it serves
        ``model``; raises :class:`UsageError`."""
        session = session_for(api_key)
        try:
            served = await list_models(session, url)
        except BaseException:
            await session.close()
            raise
        names = [str(card.get("id")) for card in served]
        if model not in names:
            await session.close()
            raise UsageError(
                f"the server at {url} does not serve '{model}'; it serves: "
                f"{', '.join(names) or 'nothing yet'}"
            )
        return cls(session, url, model, task, language, words)

    async def close(self) -> None:
        await self._session.close()

    async def transcribe(self, job: Job, on_progress: Callable[[float], None]) -> Result:
        """``job``'s transcript; raises :class:`TranscriptionFailed`."""
        try:
            event = await self._answer(job, on_progress)
        except aiohttp.ClientError as exc:
            failure = f"the server at {self._url} failed: {_describe(exc)}"
            raise TranscriptionFailed(failure) from exc
        except TimeoutError as exc:
            raise TranscriptionFailed(f"the server at {self._url} stopped answering") from exc
        except OSError as exc:
            raise TranscriptionFailed(f"cannot read it: {exc.strerror or exc}") from exc
        except ValueError as exc:  # a body or an event that is not the JSON it should be
            raise TranscriptionFailed(f"the server's answer is malformed: {exc}") from exc
        code = _language_code(event, self._language)
        try:
            transcript = transcript_from_verbose(event, code)
        except ValueError as exc:
            raise TranscriptionFailed(str(exc)) from exc
        return Result(transcript, verbose_body(event))

    async def _answer(self, job: Job, on_progress: Callable[[float], None]) -> dict[str, Any]:
        """The verbose transcript (the done event, or the body), streamed if the server
        can; a server that is busy (429) or loading (503) and says when to come back is
        asked again then, a few times."""
        for attempt in range(MAX_RETRIES + 1):
            try:
                if self._streams:
                    try:
                        return await self._post(job, True, on_progress)
                    except StreamRefused:
                        self._streams = False
                return await self._post(job, False, on_progress)
            except RetryLater as later:
                if attempt == MAX_RETRIES:
                    raise TranscriptionFailed(later.message) from later
                await asyncio.sleep(min(later.seconds, MAX_RETRY_WAIT_S))
        raise AssertionError("unreachable")

    async def _post(
        self, job: Job, stream: bool, on_progress: Callable[[float], None]
    ) -> dict[str, Any]:
        task, language, words = self._task, self._language, self._words
        endpoint = "transcriptions" if task == "transcribe" else "translations"
        with job.source.open("rb") as file:
            form = aiohttp.FormData()
            form.add_field("model", self._model)
            form.add_field("response_format", "verbose_json")
            if stream:
                form.add_field("stream", "true")
            if language is not None:
                form.add_field("language", language)
            if task == "transcribe":
                form.add_field("timestamp_granularities[]", "segment")
                if words:
                    form.add_field("timestamp_granularities[]", "word")
            form.add_field(
                "file", file, filename=job.source.name, content_type="application/octet-stream"
            )
            timeout = None if stream else aiohttp.ClientTimeout(total=None, sock_read=None)
            async with self._session.post(
                f"{self._url}/v1/audio/{endpoint}", data=form, timeout=timeout
            ) as response:
                if response.status >= 400:
                    message, param = await _error(response)
                    if stream and response.status == 400 and param == "stream":
                        raise StreamRefused(message)
                    wait = _retry_after(response)
                    if response.status in (429, 503) and wait is not None:
                        raise RetryLater(message, wait)
                    raise TranscriptionFailed(message)
                if response.content_type != "text/event-stream":
                    body: dict[str, Any] = await response.json(content_type=None)
                    return body
                return await _read_stream(response, on_progress)


def session_for(api_key: str | None) -> aiohttp.ClientSession:
    """A session that sends ``api_key`` (if any) as a bearer token."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=STREAM_READ_TIMEOUT_S
    )
    return aiohttp.ClientSession(headers=headers, timeout=timeout)


class StreamRefused(Exception):
    """The server does not stream verbose_json."""


class RetryLater(Exception):
    """The server is busy or loading, and says when to come back."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.message = message
        self.seconds = seconds


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """``Retry-After`` in seconds (None: absent, or a date rather than seconds)."""
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


async def _read_stream(
    response: aiohttp.ClientResponse, on_progress: Callable[[float], None]
) -> dict[str, Any]:
    """The done event of a transcript's server-sent events, telling ``on_progress`` each
    segment's end on the way; raises :class:`TranscriptionFailed` on an error event or a
    stream that ends without its done event."""
    async for event in _events(response.content):
        if "error" in event:
            raise TranscriptionFailed(_error_text(event))
        kind = event.get("type")
        if kind == "transcript.text.segment" and isinstance(event.get("end"), int | float):
            on_progress(float(event["end"]))
        elif kind == "transcript.text.done":
            return event
    raise TranscriptionFailed("the server's stream ended before the transcript was done")


async def _events(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of ``data:`` lines, until ``[DONE]`` (comments are skipped)."""
    data: list[str] = []
    async for line in _lines(content):
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:
            continue  # a comment (keep-alive) or another field
        payload = "\n".join(data)
        data = []
        if payload == "[DONE]":
            return
        event = json.loads(payload)
        if isinstance(event, dict):
            yield event


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The stream's lines, however long: the done event carries the whole transcript on
    one line, and a long meeting's (two hours with words: megabytes) is past what
    ``StreamReader``'s own line reading takes (512 KiB, then ``LineTooLong``)."""
    started: list[bytes] = []  # the pieces of a line whose end has not come yet
    async for chunk in content.iter_any():
        *ended, rest = chunk.split(b"\n")
        for line in ended:
            if started:
                line = b"".join([*started, line])
                started = []
            yield line.decode("utf-8").removesuffix("\r")
        if rest:
            started.append(rest)
    if started:
        yield b"".join(started).decode("utf-8").removesuffix("\r")


async def list_models(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """``GET /v1/models`` of the server at ``url``; raises :class:`UsageError` when it
    cannot be reached or refuses."""
    try:
        async with session.get(f"{url}/v1/models") as response:
            if response.status >= 400:
                message, _ = await _error(response)
                raise UsageError(f"the server at {url} refused: {message}")
            body = await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise UsageError(f"cannot reach the server at {url}: {_describe(exc)}") from exc
    except TimeoutError as exc:
        raise UsageError(f"cannot reach the server at {url}: no answer") from exc
    except ValueError as exc:
        raise UsageError(f"{url} does not answer like a stenostack server: {exc}") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise UsageError(f"{url}/v1/models does not list models")
    return [card for card in data if isinstance(card, dict)]


async def _error(response: aiohttp.ClientResponse) -> tuple[str, str | None]:
    """The message and param of an OpenAI error body (or the status and the start of the
    body, and None)."""
    text = await response.text(errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        param = error.get("param") if isinstance(error, dict) else None
        return _error_text(body), param if isinstance(param, str) else None
    return f"HTTP {response.status} {response.reason or ''}: {text[:200]}".strip(), None


def _error_text(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return json.dumps(error)


def _language_code(event: Mapping[str, Any], asked: str | None) -> str | None:
    languages = event.get("languages")
    if isinstance(languages, list) and languages and isinstance(languages[0], dict):
        code = languages[0].get("code")
        if isinstance(code, str):
            return code
    return asked


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
