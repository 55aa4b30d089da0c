"""One transcription's preparation and finish, around the model's work.

Before the model: find the speech (voice activity detection), join it without the long
silences and note where long pauses were cut. After the model: put every time back on the
uploaded file's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from stenostack.audio.decode import DecodedAudio
from stenostack.audio.samples import Speech
from stenostack.audio.timeline import SpeechTimeline
from stenostack.audio.vad import find_speech
from stenostack.models.base import AudioConfig, SpeechToTextModel, Transcript, TranscriptionOptions

# A pause at least this long (after VAD padding) is a hard break: decoding windows stop at
# it, so that no segment reaches across the silence.
LONG_PAUSE_SECONDS = 3.0


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
    timeline = prepared.timeline
    frames_per_second = audio_config.frames_per_second  # the unit of ``seek``
    for segment in transcript.segments:
        segment.start = timeline.to_file_time(segment.start)
        segment.end = timeline.to_file_time(segment.end, is_end=True)
        seek_seconds = timeline.to_file_time(segment.seek / frames_per_second)
        segment.seek = round(seek_seconds * frames_per_second)
        for word in segment.words:
            word.start = timeline.to_file_time(word.start)
            word.end = max(timeline.to_file_time(word.end, is_end=True), word.start)
    transcript.duration = prepared.duration
    return transcript
