"""One realtime transcription session: live audio in, turns found, each turn transcribed.

The client appends audio to the input buffer. With ``server_vad`` the server finds the
turns itself (``speech_started`` / ``speech_stopped``) and commits each one; without it the
client commits. Every committed turn becomes a user item whose audio goes through the
engine (and so through the same batch scheduler as uploaded files), its text coming back as
``…input_audio_transcription.delta`` events and one ``.completed``. With interim results
on (an extension, :mod:`.interim`), a turn still being spoken is transcribed again every
so often and its stable words are sent as deltas before it ends. A message the session
cannot use gets an ``error`` event naming what was wrong, and the session goes on.

A session is bounded: its events wait in an :class:`Outbox` of limited size (a client that
does not read is closed), it is closed after ``idle_timeout_s`` without a client message,
its buffer holds at most ``MAX_BUFFER_SECONDS``, and its turns go to the engine one at a
time (``MAX_TURNS_IN_FLIGHT``), with at most ``MAX_QUEUED_TURN_SECONDS`` waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket

from stenostack.api.realtime import events
from stenostack.api.realtime.client_events import (
    ClientEventError,
    decode_audio,
    parse_client_event,
)
from stenostack.api.realtime.config import (
    SessionConfig,
    SessionUpdateError,
    TranscriptionSettings,
    apply_update,
)
from stenostack.api.realtime.interim import InterimPasses, remainder
from stenostack.api.realtime.limits import RealtimeLimits
from stenostack.api.realtime.outbox import Outbox, close_with_error
from stenostack.api.request_record import RequestRecord, reported_error
from stenostack.audio.decode import DecodedAudio
from stenostack.audio.live_buffer import LiveBuffer
from stenostack.audio.live_input import LiveAudioConverter
from stenostack.audio.samples import Int16Audio
from stenostack.audio.turns import StreamingVad, TurnDetector, TurnEvent
from stenostack.engine.engine import Engine
from stenostack.engine.memory import release_free_memory
from stenostack.errors import APIError, EngineOverloaded
from stenostack.metrics import EngineMetrics
from stenostack.models.base import TextDelta

log = logging.getLogger(__name__)

# A turn that goes on this long without a pause is cut, so text keeps coming.
MAX_TURN_SECONDS = 30.0
# Without server VAD the client commits; until then the buffer holds at most this much.
MAX_BUFFER_SECONDS = 900.0
# Turns of one session transcribed at once; later ones wait, in order. The scheduler takes
# turns between requests, so a file waits longer the more requests it runs beside: a
# session flooding it with turns pushed files back by ~50 s; this way a session is one.
MAX_TURNS_IN_FLIGHT = 1
# Audio a session may have committed and not yet transcribed; a turn past it fails at once
# (a client sending faster than the engine can follow is told, not queued without end).
MAX_QUEUED_TURN_SECONDS = 120.0
# WebSocket close codes (RFC 6455): going away (OpenAI's, for an expired session), policy
# violation, and "try again later".
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
# An append at least this large is followed by handing its freed memory back to the system
# (glibc keeps the pieces of a converted 16 MiB message: ten such sessions left the engine
# ~320-420 MB above idle).
LARGE_APPEND_BYTES = 1024 * 1024
# OpenAI refuses to commit less than this.
MIN_COMMIT_MS = 100
# Events of a conversation (model responses), which a transcription session does not have.
CONVERSATION_EVENTS = frozenset(
    {
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
    }
)


@dataclass(frozen=True)
class SessionEnd:
    """Why the server ends a session: said in an error event, then in the close frame."""

    message: str
    code: str
    close_code: int


class RealtimeSession:
    def __init__(
        self,
        websocket: WebSocket,
        engine: Engine,
        metrics: EngineMetrics,
        limits: RealtimeLimits,
    ) -> None:
        self.websocket = websocket
        self.engine = engine
        self.metrics = metrics
        self.limits = limits
        self.id = events.new_id("sess")
        default_model = engine.registry.default_name()
        self.config = SessionConfig.default(default_model)
        # The input buffer holds audio at the rate of the model that will transcribe it;
        # a later choice of model must take the same rate.
        self.sample_rate = engine.registry.get(default_model).audio_config.sample_rate
        self.buffer = LiveBuffer()
        self._converter = LiveAudioConverter(self.config.audio_format, self.sample_rate)
        self.outbox = Outbox(limits.max_pending_event_bytes)
        self._interim = InterimPasses(engine, metrics, self.sample_rate, self.emit)
        self._vad: StreamingVad | None = None
        self._turns: TurnDetector | None = None
        self._turn_item: str | None = None  # the item id of the turn being spoken
        self._start_turn_detection()
        self._last_item: str | None = None
        self._transcriptions: set[asyncio.Task[None]] = set()
        self._transcribing = asyncio.Semaphore(MAX_TURNS_IN_FLIGHT)
        self._queued_turn_samples = 0  # committed, not yet transcribed

    async def serve(self) -> None:
        """Run until the client disconnects or the session must end; then drop the work
        still in flight."""
        writer = asyncio.create_task(self.outbox.send_all(self.websocket))
        self.emit(events.event("session.created", session=self._wire(self.config)))
        try:
            end = await self._serve_client(writer)
        finally:
            await self._interim.close()
            for task in self._transcriptions:
                task.cancel()
            await asyncio.gather(*self._transcriptions, return_exceptions=True)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        if end is not None:
            await self._close(end)
        # What the session held (its buffer, its VAD state) goes back to the system.
        await asyncio.to_thread(release_free_memory)

    def emit(self, event: events.Event) -> None:
        """Queue an event for the client; one writer keeps them in order."""
        self.outbox.put(event)

    def _wire(self, config: SessionConfig) -> dict[str, Any]:
        return config.to_wire(self.id, self._interim_default(config.transcription))

    def _interim_default(self, settings: TranscriptionSettings | None) -> bool:
        if settings is None:
            return False
        return self.engine.registry.get(settings.model).interim_results_by_default

    async def _serve_client(self, writer: asyncio.Task[None]) -> SessionEnd | None:
        """Handle client messages until the client leaves (None) or the session must end."""
        overflowed = asyncio.create_task(self.outbox.overflowed.wait())
        receiving: asyncio.Task[Any] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.create_task(self.websocket.receive())
                done, _ = await asyncio.wait(
                    {receiving, overflowed, writer},
                    timeout=self.limits.idle_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if overflowed in done:
                    return self._slow_reader_end()
                if writer in done:  # a send failed: the client is gone
                    return None
                if not done:
                    if self._transcriptions:  # still owed text: not idle
                        continue
                    return self._idle_end()
                message = receiving.result()
                receiving = None
                if message["type"] == "websocket.disconnect":
                    return None
                await self._receive(message.get("text"))
        finally:
            overflowed.cancel()
            if receiving is not None:
                receiving.cancel()

    def _slow_reader_end(self) -> SessionEnd:
        self.metrics.realtime_client_errors.labels("slow_reader").inc()
        return SessionEnd(
            f"The client is not reading its events: more than "
            f"{self.limits.max_pending_event_bytes} bytes are waiting. The session is closed.",
            "slow_reader",
            CLOSE_POLICY,
        )

    def _idle_end(self) -> SessionEnd:
        self.metrics.realtime_client_errors.labels("session_idle_timeout").inc()
        return SessionEnd(
            f"The session sent nothing for {self.limits.idle_timeout_s:g} s and is closed.",
            "session_idle_timeout",
            CLOSE_GOING_AWAY,
        )

    async def _close(self, end: SessionEnd) -> None:
        """Say why in an error event, then close; a client that reads nothing gets no more
        than the outbox's close grace (its unread events are dropped first)."""
        self.outbox.discard()
        log.info("closing realtime session %s: %s", self.id, end.code)
        await close_with_error(
            self.websocket, events.error(end.message, code=end.code), end.close_code
        )

    # -- client events ------------------------------------------------------------------

    async def _receive(self, text: str | None) -> None:
        client_event_id = None
        try:
            payload = parse_client_event(text)
            client_event_id = payload.get("event_id")
            kind = payload["type"]
            if kind == "session.update":
                self._update_session(payload.get("session"))
            elif kind == "input_audio_buffer.append":
                await self._append(payload.get("audio"))
            elif kind == "input_audio_buffer.commit":
                self._commit_buffer()
            elif kind == "input_audio_buffer.clear":
                self._clear_buffer()
            elif kind in CONVERSATION_EVENTS:
                raise ClientEventError(
                    f"'{kind}' is not available: this is a transcription session, which "
                    "transcribes input audio and creates no model responses.",
                    "unsupported_event",
                    "type",
                )
            else:
                hint = (
                    " Use 'session.update' with session.type 'transcription'."
                    if kind == "transcription_session.update"
                    else ""
                )
                raise ClientEventError(
                    f"Unknown event type '{kind}'. This session takes session.update, "
                    "input_audio_buffer.append, input_audio_buffer.commit and "
                    f"input_audio_buffer.clear.{hint}",
                    "unknown_event_type",
                    "type",
                )
        except ClientEventError as exc:
            self.metrics.realtime_client_errors.labels(exc.code).inc()
            self.emit(
                events.error(
                    exc.message,
                    code=exc.code,
                    param=exc.param,
                    client_event_id=client_event_id if isinstance(client_event_id, str) else None,
                )
            )
        except Exception:  # a bug must not end the session without a word
            log.exception("realtime session %s failed on a client event", self.id)
            self.emit(
                events.error(
                    "The server failed to handle this event.",
                    code="internal_error",
                    error_type="server_error",
                )
            )

    def _update_session(self, session: Any) -> None:
        try:
            config = apply_update(self.config, session, self._check_transcription)
        except SessionUpdateError as exc:
            raise ClientEventError(exc.message, "invalid_value", exc.param) from None
        previous, self.config = self.config, config
        if config.audio_format != previous.audio_format:
            self._converter = LiveAudioConverter(config.audio_format, self.sample_rate)
        if config.turns != previous.turns:
            self._start_turn_detection()
        self.emit(events.event("session.updated", session=self._wire(config)))

    def _check_transcription(self, settings: TranscriptionSettings) -> TranscriptionSettings:
        param = "session.audio.input.transcription"
        try:
            model = self.engine.registry.get(settings.model)
            language = model.validate_language(settings.language)
        except APIError as exc:
            field = "language" if exc.param == "language" else "model"
            raise SessionUpdateError(exc.message, f"{param}.{field}") from None
        model_rate = model.audio_config.sample_rate
        if model_rate != self.sample_rate:
            raise SessionUpdateError(
                f"The model '{settings.model}' takes audio at {model_rate} Hz, but this "
                f"session's input audio is at {self.sample_rate} Hz: choose a model that "
                f"takes {self.sample_rate} Hz audio.",
                f"{param}.model",
            )
        return dataclasses.replace(settings, language=language)

    async def _append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise ClientEventError(
                "input_audio_buffer.append needs 'audio': base64-encoded audio.",
                "invalid_value",
                "audio",
            )
        turn_events = await asyncio.to_thread(self._ingest, audio)
        for turn in turn_events:
            self._on_turn(turn)
        if self._turns is not None and not self._turns.speaking:
            prefix = self._turns.settings.prefix_padding_ms * self.sample_rate // 1000
            self.buffer.drop_before(self._turns.position - prefix)
        self._maybe_interim_pass()
        if len(audio) >= LARGE_APPEND_BYTES:  # its decoded and converted copies are freed
            await asyncio.to_thread(release_free_memory)

    def _ingest(self, audio: str) -> list[TurnEvent]:
        """Decode, convert, buffer and judge appended audio (blocking: runs on a worker
        thread, so a large append holds up neither the event loop nor other sessions)."""
        pieces = decode_audio(audio)
        self._check_room(sum(len(piece) for piece in pieces))
        turn_events: list[TurnEvent] = []
        for piece in pieces:
            samples = self._converter.convert(piece)
            self.buffer.append(samples)
            if self._vad is not None and self._turns is not None:
                turn_events += self._turns.feed(self._vad.probabilities(samples))
        return turn_events

    def _check_room(self, size: int) -> None:
        """Refuse an append of ``size`` bytes that is not whole samples or does not fit."""
        audio_format = self.config.audio_format
        if size % audio_format.bytes_per_sample:
            raise ClientEventError(
                f"'audio' holds {size} bytes: {audio_format.type} audio comes in whole "
                f"{audio_format.bytes_per_sample}-byte samples.",
                "invalid_value",
                "audio",
            )
        incoming = size // audio_format.bytes_per_sample * self.sample_rate
        incoming //= audio_format.input_rate
        limit = MAX_BUFFER_SECONDS * self.sample_rate
        if self._turns is None and self.buffer.held + incoming > limit:
            raise ClientEventError(
                f"The input audio buffer is full ({MAX_BUFFER_SECONDS:.0f} s): commit or clear "
                "it. This audio was dropped.",
                "input_audio_buffer_full",
                "audio",
            )

    def _commit_buffer(self) -> None:
        held_ms = self.buffer.held * 1000 // self.sample_rate
        if held_ms < MIN_COMMIT_MS:
            raise ClientEventError(
                f"Error committing input audio buffer: expected at least {MIN_COMMIT_MS} ms "
                f"of audio, but the buffer holds {held_ms} ms.",
                "input_audio_buffer_commit_empty",
            )
        item_id = self._turn_item or events.new_id("item")
        self._turn_item = None
        if self._turns is not None:
            self._turns.reset()
        sent = self._interim.end_turn(item_id)
        self._commit(self.buffer.take(self.buffer.start, self.buffer.end), item_id, sent)

    def _clear_buffer(self) -> None:
        self.buffer.clear()
        # Server VAD starts afresh: its state still heard the cleared speech, and silence
        # after a clear in mid-speech opened and committed a turn of nothing.
        self._start_turn_detection()
        self.emit(events.event("input_audio_buffer.cleared"))

    # -- turns and items ----------------------------------------------------------------

    def _start_turn_detection(self) -> None:
        """(Re)start server VAD at the end of the buffer, or stop it."""
        self._end_turn_unheard()
        if self.config.turns is None:
            self._vad, self._turns = None, None
            return
        self._vad = StreamingVad(self.sample_rate)
        self._turns = TurnDetector(self.config.turns, MAX_TURN_SECONDS, start=self.buffer.end)

    def _end_turn_unheard(self) -> None:
        """Forget the turn in progress, which will not be committed."""
        if self._turn_item is not None:
            self._interim.end_turn(self._turn_item)
        self._turn_item = None

    def _on_turn(self, turn: TurnEvent) -> None:
        at_ms = turn.position * 1000 // self.sample_rate
        if turn.kind == "started":
            self._turn_item = events.new_id("item")
            self._interim.start_turn(self._turn_item)
            self.emit(
                events.event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=at_ms,
                    item_id=self._turn_item,
                )
            )
            return
        item_id = self._turn_item or events.new_id("item")
        self._turn_item = None
        self.emit(
            events.event("input_audio_buffer.speech_stopped", audio_end_ms=at_ms, item_id=item_id)
        )
        sent = self._interim.end_turn(item_id)
        self._commit(self.buffer.take(self.buffer.start, turn.position), item_id, sent)

    def _maybe_interim_pass(self) -> None:
        """Start a pass over the turn being spoken if interim results are on and one is
        due; never while a committed turn of this session is owed its text."""
        settings = self.config.transcription
        if settings is None or self._turns is None or not self._turns.speaking:
            return
        if self._transcriptions or not settings.interim_on(self._interim_default(settings)):
            return
        if self._interim.due(self.buffer, settings.interim_interval_s):
            self._interim.start(self.buffer, settings)

    def _commit(self, audio: Int16Audio, item_id: str, sent: str = "") -> None:
        """Commit a turn's audio as an item and transcribe it; ``sent``: what of its text
        interim results sent already."""
        previous, self._last_item = self._last_item, item_id
        self.emit(
            events.event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        )
        self.emit(events.item_added(item_id, previous))
        if self.config.transcription is None:
            self.emit(events.item_done(item_id, previous, None))
            return
        queued = self._queued_turn_samples
        if queued and queued + len(audio) > MAX_QUEUED_TURN_SECONDS * self.sample_rate:
            self._fail(item_id, previous, self._behind(queued))
            return
        task = asyncio.create_task(
            self._transcribe(item_id, previous, audio, self.config.transcription, sent)
        )
        self._transcriptions.add(task)
        self._queued_turn_samples += len(audio)

        def finished(task: asyncio.Task[None]) -> None:
            self._transcriptions.discard(task)
            self._queued_turn_samples -= len(audio)

        task.add_done_callback(finished)

    def _behind(self, queued_samples: int) -> EngineOverloaded:
        queued_s = queued_samples / self.sample_rate
        self.metrics.realtime_client_errors.labels("turns_behind").inc()
        return EngineOverloaded(
            f"This session has {queued_s:.0f} s of audio waiting to be transcribed (the limit "
            f"is {MAX_QUEUED_TURN_SECONDS:.0f} s), so this turn was not transcribed: send "
            "audio no faster than real time.",
            retry_after_s=max(queued_s / 10, 1),
        )

    async def _transcribe(
        self,
        item_id: str,
        previous: str | None,
        audio: Int16Audio,
        settings: TranscriptionSettings,
        sent: str,
    ) -> None:
        options = settings.options(logprobs=self.config.logprobs)
        record = RequestRecord(self.metrics, "realtime")
        record.model = self.engine.registry.root_name(settings.model)
        decoded = DecodedAudio(audio, self.sample_rate)

        def on_delta(delta: TextDelta) -> None:
            self.emit(events.transcription_delta(item_id, delta.text, delta.logprobs))

        try:
            with record.recording():  # also a turn cancelled as the client left (499)
                async with self._transcribing:
                    result = await self.engine.run(
                        settings.model,
                        decoded,
                        options,
                        # Interim deltas went first: the final text follows on from them.
                        on_delta=None if sent else on_delta,
                        work_class="live",
                    )
        except Exception as exc:
            if not isinstance(exc, APIError):
                log.exception("transcribing realtime item %s failed", item_id)
            self._fail(item_id, previous, reported_error(exc))
            return
        seconds = decoded.duration
        record.succeeded(seconds)
        transcript = result.transcript
        rest = remainder(sent, transcript.text) if sent else ""
        if rest:
            self.emit(events.transcription_delta(item_id, rest, None))
        self.emit(
            events.transcription_completed(item_id, transcript.text, seconds, transcript.logprobs)
        )
        self.emit(events.item_done(item_id, previous, transcript.text))

    def _fail(self, item_id: str, previous: str | None, failure: APIError) -> None:
        self.emit(events.transcription_failed(item_id, failure))
        self.emit(events.item_done(item_id, previous, None))
