"""One transcription's preparation and finish, around the model's work.

Before the model: find the speech (voice activity detection), join it without the long
silences and note where long pauses were cut. After the model: put every time back on the
uploaded file's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stenostack.audio.decode import DecodedAudio
from stenostack.audio.timeline import SpeechTimeline
from stenostack.audio.vad import find_speech
from stenostack.models.base import Int16Audio, SpeechToTextModel, Transcript, TranscriptionOptions

# A pause at least this long (after VAD padding) is a hard break: decoding windows stop at
# it, so that no segment reaches across the silence.
LONG_PAUSE_SECONDS = 3.0


@dataclass
class PreparedAudio:
    """What the model is given: speech only, and where long pauses were."""

    duration: float  # of the uploaded file
    speech: Int16Audio
    breaks: Sequence[int]
    timeline: SpeechTimeline | None  # None: the model sees the file as it is

    @property
    def is_silent(self) -> bool:
        return len(self.speech) == 0


def prepare_audio(
    model: SpeechToTextModel, audio: DecodedAudio, options: TranscriptionOptions
) -> PreparedAudio:
    """Blocking (VAD runs on the CPU); run it on a worker thread."""
    if model.audio_config.long_audio != "vad":
        return PreparedAudio(audio.duration, audio.samples, (), None)
    timeline = SpeechTimeline(
        find_speech(audio.samples, audio.sample_rate, options.vad), audio.sample_rate
    )
    if not timeline.spans:
        return PreparedAudio(audio.duration, audio.samples[:0], (), timeline)
    return PreparedAudio(
        audio.duration,
        timeline.join(audio.samples),
        timeline.seams_after_pauses(LONG_PAUSE_SECONDS),
        timeline,
    )


def silent_transcript(
    model: SpeechToTextModel, options: TranscriptionOptions, duration: float
) -> Transcript:
    """Nothing but silence or noise: an empty transcript, never invented words."""
    language = options.language or ("en" if "en" in model.supported_languages else "")
    return Transcript(text="", language=language, duration=duration, segments=[])


def finish_transcript(transcript: Transcript, prepared: PreparedAudio) -> Transcript:
    """Map the model's times (on the joined speech) back onto the uploaded file."""
    timeline = prepared.timeline
    if timeline is not None:
        for segment in transcript.segments:
            segment.start = timeline.to_file_time(segment.start)
            segment.end = timeline.to_file_time(segment.end, is_end=True)
            segment.seek = round(timeline.to_file_time(segment.seek / 100) * 100)
            for word in segment.words:
                word.start = timeline.to_file_time(word.start)
                word.end = max(timeline.to_file_time(word.end, is_end=True), word.start)
    transcript.duration = prepared.duration
    return transcript
