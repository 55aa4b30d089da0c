"""A request body read from the client once and sent on as it arrives.

For a multipart upload the router must learn ``model`` before it can pick a backend, so
it reads ahead only that far: the fields before ``model`` stay in memory (they are small),
and only if the file comes before ``model`` is the file spooled to a temporary file until
``model`` arrives. Everything after that flows from the client to the backend piece by
piece. The bytes the client sent reach the backend unchanged.

For retries, the body keeps up to ``replay_limit`` bytes of what it streamed, drawn from a
:class:`ReplayBudget` shared by all requests so memory stays bounded however many are in
flight; a failed attempt can be sent again to another backend if everything sent so far
was kept. Once a backend has answered, nothing more is kept.

Whatever goes wrong while reading the client (it hung up, stalled, sent too much or a
malformed form) is the client's fault, and the body remembers it as :attr:`client_error`:
the proxy reads the body inside aiohttp's upload, which wraps such errors as its own
connection errors, and must not blame the backend for them.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from stenostack.errors import APIError, ClientDisconnected, InvalidRequest, UploadTooLarge

SPOOL_CHUNK = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_BOUNDARY_CHARS = 70  # RFC 2046, section 5.1.1
# 16-bit 16 kHz mono PCM: the yardstick for turning upload bytes into audio seconds, for
# least-load routing and callers' audio limits, before anything is decoded.
BYTES_PER_AUDIO_SECOND = 32_000


def estimated_audio_seconds(size_bytes: int) -> float:
    return size_bytes / BYTES_PER_AUDIO_SECOND


class FormHead:
    """Text fields seen so far in a multipart body, parsed incrementally."""

    def __init__(self, boundary: bytes) -> None:
        self.fields: dict[str, str] = {}
        self.file_started = False
        self._name = ""
        self._is_file = False
        self._value = bytearray()
        self._header_field = bytearray()
        self._header_value = bytearray()
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field_data,
                    "on_header_value": self._header_value_data,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                },
            )
        except FormParserError as exc:  # a boundary it cannot use
            raise _malformed(exc) from None

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise _malformed(exc) from None

    def _part_begin(self) -> None:
        self._name, self._is_file = "", False
        self._value.clear()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self._header_value))
            self._name = options.get(b"name", b"").decode("utf-8", "replace")
            self._is_file = b"filename" in options
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        if self._is_file:
            self.file_started = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file and len(self._value) < MAX_FIELD_BYTES:
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._name and not self._is_file:
            self.fields.setdefault(self._name, self._value.decode("utf-8", "replace").strip())


def _malformed(exc: FormParserError) -> InvalidRequest:
    return InvalidRequest(f"Malformed multipart body: {exc}")


def multipart_boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data body (None if the body is something else);
    raises 400 for a boundary no conforming client sends."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if boundary is not None and not 0 < len(boundary) <= MAX_BOUNDARY_CHARS:
        raise InvalidRequest(
            f"The multipart boundary must be 1 to {MAX_BOUNDARY_CHARS} characters long, "
            f"not {len(boundary)}.",
            code="invalid_content_type",
        )
    return boundary


class ReplayBudget:
    """Memory for replay buffers, shared by every request in flight."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.available = total_bytes

    def resize(self, total_bytes: int) -> None:
        """A reloaded config changed the budget; what requests hold now stays theirs."""
        self.available += total_bytes - self.total
        self.total = total_bytes

    def take(self, size: int) -> bool:
        if size > self.available:
            return False
        self.available -= size
        return True

    def give(self, size: int) -> None:
        self.available += size


class RequestBody:
    def __init__(
        self,
        receive: Receive,
        max_bytes: int,
        replay_limit: int,
        budget: ReplayBudget | None = None,
    ) -> None:
        self._receive = receive
        self.max_bytes = max_bytes
        self.replay_limit = replay_limit
        self._budget = budget or ReplayBudget(replay_limit)
        self.received = 0  # bytes read from the client so far
        self._read_whole = asyncio.Event()  # the client has sent all of it
        self._ahead: list[bytes] = []  # read ahead in memory, before routing
        self._spool: IO[bytes] | None = None  # read ahead on disk, after the file began
        self._kept: list[bytes] = []  # streamed to a backend and kept for a retry
        self._kept_bytes = 0
        self._kept_all = True
        self.client_error: APIError | None = None  # why reading the client failed, if it did

    @property
    def complete(self) -> bool:
        """The client has sent all of the body."""
        return self._read_whole.is_set()

    async def wait_complete(self) -> None:
        await self._read_whole.wait()

    @property
    def spooled(self) -> bool:
        """Part of the body waits in a temporary file."""
        return self._spool is not None

    async def read_form_head(self, boundary: bytes, wanted: str) -> dict[str, str]:
        """Read ahead until the text field ``wanted`` is known (or the body ends)."""
        head = FormHead(boundary)
        while wanted not in head.fields and not self.complete:
            chunk = await self._read_client()
            head.feed(chunk)
            if head.file_started and self._spool is None and wanted not in head.fields:
                self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
            if self._spool is not None:
                self._spool.write(chunk)
            else:
                self._ahead.append(chunk)
        return head.fields

    async def read_all(self) -> bytes:
        """The whole body, in memory (for small JSON requests)."""
        while not self.complete:
            self._ahead.append(await self._read_client())
        return b"".join(self._ahead)

    def whole(self) -> bytes | None:
        """The body, if it was all read ahead into memory (a small request)."""
        if self.complete and self._spool is None and not self._kept:
            return b"".join(self._ahead)
        return None

    @property
    def replayable(self) -> bool:
        """Whether everything streamed so far can be streamed again."""
        return self._kept_all

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body from its first byte: what was read ahead, what was kept from earlier
        attempts, then the rest as the client sends it."""
        if not self.replayable:
            raise RuntimeError("the body was streamed beyond the replay buffer")
        for chunk in self._ahead:
            yield chunk
        if self._spool is not None:
            self._spool.seek(0)
            while piece := self._spool.read(SPOOL_CHUNK):
                yield piece
        for chunk in list(self._kept):
            yield chunk
        while not self.complete:
            chunk = await self._read_client()
            self._keep(chunk)
            yield chunk

    def stop_keeping(self) -> None:
        """No retry can follow (a backend answered): free what was kept for one."""
        self._kept_all = False
        self._kept.clear()
        self._budget.give(self._kept_bytes)
        self._kept_bytes = 0

    def close(self) -> None:
        if self._kept_bytes:
            self.stop_keeping()
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _keep(self, chunk: bytes) -> None:
        if not self._kept_all:
            return
        fits = self._kept_bytes + len(chunk) <= self.replay_limit
        if not fits or not self._budget.take(len(chunk)):
            self.stop_keeping()
            return
        self._kept.append(chunk)
        self._kept_bytes += len(chunk)

    async def _read_client(self) -> bytes:
        try:
            return await self._next_chunk()
        except APIError as error:  # a hang-up, a stall, too much: the client's doing
            self.client_error = error
            raise

    async def _next_chunk(self) -> bytes:
        try:
            message: dict[str, Any] = dict(await self._receive())
        except ClientDisconnect:
            raise ClientDisconnected() from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise UploadTooLarge(self.max_bytes)
        if not message.get("more_body", False):
            self._read_whole.set()
        return chunk
