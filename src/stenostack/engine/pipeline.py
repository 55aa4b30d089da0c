"""One transcription, start to end: find speech, run the model, put times back on the file."""

from __future__ import annotations

from stenostack.audio.decode import DecodedAudio
from stenostack.audio.timeline import SpeechTimeline
from stenostack.audio.vad import find_speech
from stenostack.models.base import SpeechToTextModel, Transcript, TranscriptionOptions

# A pause at least this long (after VAD padding) is a hard break: decoding windows stop at
# it, so that no segment reaches across the silence.
LONG_PAUSE_SECONDS = 3.0


def transcribe_audio(
    model: SpeechToTextModel, audio: DecodedAudio, options: TranscriptionOptions
) -> Transcript:
    """Blocking; run it on a worker thread."""
    if model.audio_config.long_audio != "vad":
        transcript = model.transcribe(audio.samples, options)
        transcript.duration = audio.duration
        return transcript

    timeline = SpeechTimeline(
        find_speech(audio.samples, audio.sample_rate, options.vad), audio.sample_rate
    )
    if not timeline.spans:
        # Nothing but silence or noise: an empty transcript, never invented words.
        language = options.language or ("en" if "en" in model.supported_languages else "")
        return Transcript(text="", language=language, duration=audio.duration, segments=[])
    breaks = timeline.seams_after_pauses(LONG_PAUSE_SECONDS)
    transcript = model.transcribe(timeline.join(audio.samples), options, breaks)
    for segment in transcript.segments:
        segment.start = timeline.to_file_time(segment.start)
        segment.end = timeline.to_file_time(segment.end, is_end=True)
        segment.seek = round(timeline.to_file_time(segment.seek / 100) * 100)
        for word in segment.words:
            word.start = timeline.to_file_time(word.start)
            word.end = max(timeline.to_file_time(word.end, is_end=True), word.start)
    transcript.duration = audio.duration
    return transcript
