"""One transcription's preparation and finish, around the model's work.

Before the model: find the speech (voice activity detection), join it without the long
silences and note where long pauses were cut, either for the whole file at once or, for a
streamed file and a model that can take it, as the file decodes (:func:`prepare_growing`),
so that the first words need not wait for the whole file. Both give the same speech. After
the model: put every time back on the uploaded file's timeline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from stenostack.audio.decode import DecodedAudio, decode_pieces
from stenostack.audio.growing_speech import GrowingSpeech, SpeechPreparation
from stenostack.audio.samples import Speech
from stenostack.audio.timeline import SpeechTimeline
from stenostack.audio.vad import find_speech
from stenostack.models.base import (
    AudioConfig,
    DeltaSink,
    Segment,
    SpeechToTextModel,
    TextDelta,
    Transcript,
    TranscriptionOptions,
)

# A pause at least this long (after VAD padding) is a hard break: decoding windows stop at
# it, so that no segment reaches across the silence.
LONG_PAUSE_SECONDS = 3.0
# Streamed files are prepared as they decode (see prepare_growing), for models that take
# growing speech; "0" turns it off (the whole file is decoded and searched for speech
# first), which benchmarks/streaming_latency.py uses to compare the two.
GROWING_SPEECH_ENV = "STENOSTACK_GROWING_SPEECH"


def growing_speech_enabled() -> bool:
    return os.environ.get(GROWING_SPEECH_ENV, "1") != "0"


@dataclass
class PreparedAudio:
    """What the model is given (speech only, and where long pauses were), and the way back."""

    duration: float  # of the uploaded file
    speech: Speech
    timeline: SpeechTimeline  # where the speech was in the file

    @property
    def is_silent(self) -> bool:
        return len(self.speech.samples) == 0


def prepare_audio(audio: DecodedAudio, options: TranscriptionOptions) -> PreparedAudio:
    """Blocking (VAD runs on the CPU); run it on a worker thread."""
    timeline = SpeechTimeline(
        find_speech(audio.samples, audio.sample_rate, options.vad), audio.sample_rate
    )
    if not timeline.spans:
        return PreparedAudio(audio.duration, Speech(audio.samples[:0]), timeline)
    speech = Speech(timeline.join(audio.samples), timeline.seams_after_pauses(LONG_PAUSE_SECONDS))
    return PreparedAudio(audio.duration, speech, timeline)


def prepare_growing(
    source: BinaryIO,
    audio_config: AudioConfig,
    max_seconds: float,
    options: TranscriptionOptions,
    expected_seconds: float,
) -> SpeechPreparation:
    """Decoding and VAD that hand the speech on span by span; run it on a decode thread
    (``run``). Nothing is decoded yet."""
    rate = audio_config.sample_rate
    source.seek(0)
    speech = GrowingSpeech(rate, LONG_PAUSE_SECONDS, expected_samples=int(expected_seconds * rate))
    return SpeechPreparation(decode_pieces(source, rate, max_seconds), rate, options.vad, speech)


async def ready_async(speech: GrowingSpeech, end: int) -> None:
    """Wait on the event loop until the first ``end`` samples of ``speech`` are final (or it
    is complete); raise its decoding error if decoding failed."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(changed.set)

    unwatch = speech.watch(wake)
    try:
        while not speech.is_ready(end):
            await changed.wait()
            changed.clear()
    finally:
        unwatch()
    speech.ready(end, timeout=0)  # raises the decoding error, if any


def prepared_from(speech: GrowingSpeech) -> PreparedAudio:
    """The complete growing speech, as :func:`prepare_audio` would have made it."""
    duration, joined, timeline = speech.wait_complete(timeout=0)
    return PreparedAudio(duration, joined, timeline)


def silent_transcript(
    model: SpeechToTextModel, options: TranscriptionOptions, duration: float
) -> Transcript:
    """Nothing but silence or noise: an empty transcript, never invented words."""
    language = options.language or ("en" if "en" in model.supported_languages else "")
    return Transcript(text="", language=language, duration=duration, segments=[])


def finish_transcript(
    transcript: Transcript, prepared: PreparedAudio, audio_config: AudioConfig
) -> Transcript:
    """Map the model's times (on the joined speech) back onto the uploaded file."""
    for segment in transcript.segments:
        _to_file_time(segment, prepared.timeline, audio_config)
    transcript.duration = prepared.duration
    return transcript


def on_file_timeline(
    segment: Segment, timeline: SpeechTimeline, audio_config: AudioConfig
) -> Segment:
    """A copy of ``segment`` with its times on the uploaded file (it is left as it was)."""
    copy = dataclasses.replace(segment, words=[dataclasses.replace(w) for w in segment.words])
    _to_file_time(copy, timeline, audio_config)
    return copy


def deltas_on_file_timeline(
    on_delta: DeltaSink | None,
    timeline: Callable[[], SpeechTimeline],
    audio_config: AudioConfig,
) -> DeltaSink | None:
    """``on_delta``, handed each delta with its segment on the uploaded file's timeline.

    ``timeline`` gives the speech's timeline as far as it is known: a growing speech's
    grows, but a final segment lies in what is known already.
    """
    if on_delta is None:
        return None

    def hand_on(delta: TextDelta) -> None:
        if delta.segment is not None:
            segment = on_file_timeline(delta.segment, timeline(), audio_config)
            delta = dataclasses.replace(delta, segment=segment)
        on_delta(delta)

    return hand_on


def _to_file_time(segment: Segment, timeline: SpeechTimeline, audio_config: AudioConfig) -> None:
    frames_per_second = audio_config.frames_per_second  # the unit of ``seek``
    segment.start = timeline.to_file_time(segment.start)
    segment.end = timeline.to_file_time(segment.end, is_end=True)
    seek_seconds = timeline.to_file_time(segment.seek / frames_per_second)
    segment.seek = round(seek_seconds * frames_per_second)
    for word in segment.words:
        word.start = timeline.to_file_time(word.start)
        word.end = max(timeline.to_file_time(word.end, is_end=True), word.start)
