"""Interim results: the text of a turn while it is still spoken (an extension OpenAI lacks).

Every ``interim_interval_ms`` the turn's audio so far is transcribed again, through the
engine as live work like any turn. One pass alone may guess wrong at its cut-off end, so
only the words on which the last two passes agree are sent (LocalAgreement, as
whisper_streaming commits text), as ``…input_audio_transcription.delta`` events, and only
what goes beyond what was already sent. When the turn is committed its final text follows
on from what was sent (:func:`remainder`), and ``.completed`` carries the whole final text,
which replaces everything sent before.

A session runs at most one pass at a time, none while one of its committed turns is owed
text, and a pass that fails or is cancelled is simply dropped: interim text is a courtesy,
never an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stenostack.api.realtime import events
from stenostack.api.realtime.config import TranscriptionSettings
from stenostack.audio.decode import DecodedAudio
from stenostack.audio.live_buffer import LiveBuffer
from stenostack.engine.engine import Engine
from stenostack.metrics import EngineMetrics

log = logging.getLogger(__name__)

# A pass over less of a turn than this (its 300 ms prefix padding and a word or two) mostly
# hears a fragment, which a model may turn into a confident wrong word.
MIN_INTERIM_SECONDS = 1.0

_WORD = re.compile(r"\S+")
# Punctuation a model puts after the last word it heard is its guess that speech ends there
# ("moved to Thursday." before "afternoon" was heard): held back until more text follows.
_EDGE_PUNCTUATION = ".,;:!?"


def agreed_text(previous: str, current: str) -> str:
    """The start of ``current`` up to the last of the leading words it shares with
    ``previous``, spaced as ``current`` spaces them."""
    end = 0
    for old, new in zip(_WORD.finditer(previous), _WORD.finditer(current), strict=False):
        if old.group() != new.group():
            break
        end = new.end()
    return current[:end]


def beyond(sent: str, text: str) -> str:
    """What of ``text`` goes past ``sent``: the rest of it where it starts with ``sent``;
    else (a pass revised words already sent) the words past as many as were sent."""
    if text.startswith(sent):
        return text[len(sent) :]
    words = list(_WORD.finditer(text))
    already = len(_WORD.findall(sent))
    if len(words) <= already:
        return ""
    return " " + text[words[already].start() :]


def remainder(sent: str, final: str) -> str:
    """What of a turn's final text is still to be sent after ``sent``: nothing where the
    final text does not start with it (``.completed`` then corrects what was sent)."""
    return final[len(sent) :] if final.startswith(sent) else ""


@dataclass
class InterimText:
    """The passes' text of one turn: the last hypothesis, and what was sent of it."""

    sent: str = ""
    last: str | None = None

    def update(self, hypothesis: str) -> str:
        """Take a new pass's text; return what is now stable and not yet sent."""
        previous, self.last = self.last, hypothesis
        if previous is None:
            return ""
        stable = agreed_text(previous, hypothesis)
        if len(stable) == len(hypothesis.rstrip()):  # up to the edge of what was heard
            stable = stable.rstrip(_EDGE_PUNCTUATION)
        delta = beyond(self.sent, stable)
        self.sent += delta
        return delta


@dataclass
class _Turn:
    item_id: str
    text: InterimText = field(default_factory=InterimText)
    last_pass_at: float = field(default_factory=time.monotonic)
    heard_until: int = 0  # buffer position the last pass heard up to


class InterimPasses:
    """The interim passes of one session, over the turn being spoken: at most one at a
    time (used only on the session's event loop)."""

    def __init__(
        self,
        engine: Engine,
        metrics: EngineMetrics,
        sample_rate: int,
        emit: Callable[[events.Event], None],
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._sample_rate = sample_rate
        self._emit = emit
        self._turn: _Turn | None = None
        self._task: asyncio.Task[None] | None = None

    def start_turn(self, item_id: str) -> None:
        """A turn has started: its first pass is due one interval from now."""
        self._cancel()
        self._turn = _Turn(item_id)

    def end_turn(self, item_id: str) -> str:
        """Stop the passes (the turn was committed, cleared or dropped); return what of
        ``item_id``'s text was sent."""
        self._cancel()
        turn, self._turn = self._turn, None
        return turn.text.sent if turn is not None and turn.item_id == item_id else ""

    def due(self, buffer: LiveBuffer, interval_s: float) -> bool:
        """Whether a pass over the turn should start now: an interval since the last one
        started, none running, and new audio to hear."""
        turn = self._turn
        return (
            turn is not None
            and self._task is None
            and time.monotonic() - turn.last_pass_at >= interval_s
            and buffer.end > turn.heard_until
            and buffer.held >= MIN_INTERIM_SECONDS * self._sample_rate
        )

    def start(self, buffer: LiveBuffer, settings: TranscriptionSettings) -> None:
        """Start a pass over everything the buffer holds (the turn so far)."""
        turn = self._turn
        if turn is None:
            return
        turn.last_pass_at, turn.heard_until = time.monotonic(), buffer.end
        audio = DecodedAudio(buffer.copy_held(), self._sample_rate)
        task = asyncio.create_task(self._run(turn, audio, settings))
        self._task = task
        task.add_done_callback(self._finished)

    async def close(self) -> None:
        """Cancel the pass in flight, if any, and wait for it to end."""
        task = self._task
        self._cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _finished(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def _run(self, turn: _Turn, audio: DecodedAudio, settings: TranscriptionSettings) -> None:
        model = self._engine.registry.root_name(settings.model)
        try:
            result = await self._engine.run(
                settings.model, audio, settings.options(logprobs=False), work_class="live"
            )
        except asyncio.CancelledError:
            self._count(model, "cancelled")
            raise
        except Exception as exc:  # a courtesy that failed: the final text will come anyway
            self._count(model, "failed")
            log.debug("interim pass over item %s dropped: %r", turn.item_id, exc)
            return
        self._count(model, "completed")
        if turn is not self._turn:  # the turn ended meanwhile
            return
        delta = turn.text.update(result.transcript.text)
        if delta:
            self._emit(events.transcription_delta(turn.item_id, delta, None))

    def _count(self, model: str, outcome: str) -> None:
        self._metrics.realtime_interim_passes.labels(model, outcome).inc()
