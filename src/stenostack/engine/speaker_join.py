"""A transcription in progress joined to its diarization, which runs beside it.

The speech model hands on each segment as it is final; once the diarization is done too,
the segment is split by speaker (:mod:`stenostack.models.diarization.attribution`) and each
part goes on to a stream, the newest one once the next is known (its end may still move
out to its speaker's turn). Segments final before the diarization wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stenostack.models.base import DeltaSink, Segment, TextDelta, Transcript
from stenostack.models.diarization.attribution import SpeakerAttribution
from stenostack.models.diarization.base import Diarization


class SpeakerJoin:
    """Takes the model's deltas (on the event loop) and gives speaker segments."""

    def __init__(
        self,
        diarizing: asyncio.Future[Diarization],
        on_file_timeline: Callable[[Segment], Segment],
        on_delta: DeltaSink | None,
    ) -> None:
        self._diarizing = diarizing
        self._on_file_timeline = on_file_timeline
        self._on_delta = on_delta
        self._waiting: list[TextDelta] = []
        self._attribution: SpeakerAttribution | None = None
        self.segments: list[Segment] = []  # single-speaker parts, on the speech's timeline
        self._separators: list[str] = []  # the text before each part's, in a stream
        self._sent = 0  # parts sent on so far
        diarizing.add_done_callback(self._diarized)

    def take(self, delta: TextDelta) -> None:
        if delta.segment is not None:
            self._waiting.append(delta)
            self._hand_on()

    def cancel(self) -> None:
        """The request ended without the transcript: stop the diarization."""
        self._diarizing.cancel()

    async def finish(self, transcript: Transcript) -> Transcript:
        """The transcript with its segments split by speaker, once the diarization is done."""
        self._attribution = SpeakerAttribution(await self._diarizing)
        self._hand_on()
        self._attribution.finish()
        self._send(len(self.segments))
        transcript.segments = self.segments
        return transcript

    def _diarized(self, diarizing: asyncio.Future[Diarization]) -> None:
        if not diarizing.cancelled() and diarizing.exception() is None:
            self._attribution = SpeakerAttribution(diarizing.result())
            self._hand_on()

    def _hand_on(self) -> None:
        if self._attribution is None:
            return
        for delta in self._waiting:
            assert delta.segment is not None
            # The first part keeps the separator the model put before the segment's text;
            # later parts are separated as their words are (none between Chinese words).
            separator = delta.text[: len(delta.text) - len(delta.segment.text.strip())]
            for index, part in enumerate(self._attribution.split(delta.segment)):
                if index > 0:
                    separator = " " if part.text[:1].isspace() else ""
                part.id = len(self.segments)
                self.segments.append(part)
                self._separators.append(separator)
        self._waiting.clear()
        # The last part's end may still move (until the next part is known): it waits.
        self._send(len(self.segments) - 1)

    def _send(self, end: int) -> None:
        """Send the parts not sent yet, up to ``end``."""
        if self._on_delta is None:
            return
        for part, separator in zip(
            self.segments[self._sent : end], self._separators[self._sent : end], strict=True
        ):
            text = separator + part.text.strip()
            self._on_delta(TextDelta(text, segment=self._on_file_timeline(part)))
        self._sent = max(self._sent, end)
