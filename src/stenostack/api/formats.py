"""Transcripts rendered as OpenAI's response formats: json, verbose_json, text, srt, vtt and
diarized_json.

Where speakers were asked for, they show in each format's own way: ``speaker`` on each
``diarized_json`` and ``verbose_json`` segment, a WebVTT voice tag (``<v A>``), and an
``A: `` before each cue of SRT and each speaker's turn in text.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.responses import JSONResponse, PlainTextResponse, Response

from stenostack.api.forms import AudioRequest
from stenostack.models.base import Segment, SpeechToTextModel, Task, Transcript, Word
from stenostack.models.languages import language_name

SEGMENT_FIELDS = (
    "id", "seek", "start", "end", "text", "tokens",
    "temperature", "avg_logprob", "compression_ratio", "no_speech_prob",
)  # fmt: skip


def render(
    request: AudioRequest, transcript: Transcript, model: SpeechToTextModel, task: Task
) -> Response:
    fmt = request.response_format
    if fmt == "text":
        if request.speakers is not None:
            return PlainTextResponse(speaker_text(transcript.segments))
        return PlainTextResponse(transcript.text + "\n")
    if fmt == "srt":
        return PlainTextResponse(to_srt(transcript.segments))
    if fmt == "vtt":
        return PlainTextResponse(to_vtt(transcript.segments))
    if fmt == "verbose_json":
        words = "word" in request.granularities
        return JSONResponse(verbose_json(transcript, model, task, words=words))
    if fmt == "diarized_json":
        return JSONResponse(diarized_json(transcript, model))
    body: dict[str, Any] = {"text": transcript.text}
    if task == "transcribe":
        if transcript.logprobs is not None:
            body["logprobs"] = [asdict(item) for item in transcript.logprobs]
        body["usage"] = model.usage(transcript.duration)
    return JSONResponse(body)


def verbose_json(
    transcript: Transcript, model: SpeechToTextModel, task: Task, *, words: bool
) -> dict[str, Any]:
    """OpenAI's verbose transcript; ``words``: with its words' times (asked for by
    ``timestamp_granularities[]=word``)."""
    body: dict[str, Any] = {
        "task": task,
        "language": "english" if task == "translate" else language_name(transcript.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [_verbose_segment(segment) for segment in transcript.segments],
    }
    if task == "translate":
        return body
    if words:
        body["words"] = [_word(word) for word in transcript.words]
    if transcript.logprobs is not None:
        body["logprobs"] = [asdict(item) for item in transcript.logprobs]
    body["usage"] = model.usage(transcript.duration)
    return body


def _verbose_segment(segment: Segment) -> dict[str, Any]:
    body = {name: getattr(segment, name) for name in SEGMENT_FIELDS}
    if segment.speaker is not None:
        body["speaker"] = segment.speaker
    return body


def _word(word: Word) -> dict[str, Any]:
    return {"word": word.word, "start": word.start, "end": word.end}


def diarized_segment(segment: Segment) -> dict[str, Any]:
    """A segment as OpenAI's ``TranscriptionDiarizedSegment`` (and the stream's
    ``transcript.text.segment`` event)."""
    return {
        "type": "transcript.text.segment",
        "id": f"seg_{segment.id}",
        "start": segment.start,
        "end": segment.end,
        "text": segment.text.strip(),
        "speaker": segment.speaker or "",
    }


def timed_segment(segment: Segment, *, words: bool) -> dict[str, Any]:
    """The ``transcript.text.segment`` event of a verbose_json stream (an extension): the
    diarized segment's fields, ``speaker`` only where speakers were asked for, and the
    segment's ``words`` where words were."""
    event = diarized_segment(segment)
    if segment.speaker is None:
        del event["speaker"]
    if words:
        event["words"] = [_word(word) for word in segment.words]
    return event


def diarized_json(transcript: Transcript, model: SpeechToTextModel) -> dict[str, Any]:
    return {
        "task": "transcribe",
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [diarized_segment(s) for s in transcript.segments if s.text.strip()],
        "usage": model.usage(transcript.duration),
    }


def speaker_text(segments: list[Segment]) -> str:
    """One line per speaker's turn: ``A: what they said``."""
    lines: list[str] = []
    speaker = None
    for segment in segments:
        text = segment.text.strip()
        if not text:
            continue
        if lines and segment.speaker == speaker:
            lines[-1] += " " + text
        else:
            lines.append(f"{segment.speaker}: {text}")
            speaker = segment.speaker
    return "".join(line + "\n" for line in lines)


def subtitle_time(seconds: float, decimal_marker: str) -> str:
    """``HH:MM:SS,mmm`` (SRT) or ``HH:MM:SS.mmm`` (VTT), rounded to the millisecond."""
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cue_text(text: str) -> str:
    # "-->" inside a cue would end the cue's timing line for a subtitle parser.
    return text.strip().replace("-->", "->")


def to_srt(segments: list[Segment]) -> str:
    blocks = []
    for number, segment in enumerate((s for s in segments if s.text.strip()), start=1):
        timing = f"{subtitle_time(segment.start, ',')} --> {subtitle_time(segment.end, ',')}"
        text = _cue_text(segment.text)
        if segment.speaker is not None:
            text = f"{segment.speaker}: {text}"
        blocks.append(f"{number}\n{timing}\n{text}\n\n")
    return "".join(blocks)


def to_vtt(segments: list[Segment]) -> str:
    blocks = ["WEBVTT\n\n"]
    for segment in segments:
        if not segment.text.strip():
            continue
        text = _vtt_escaped(_cue_text(segment.text))
        if segment.speaker is not None:
            # A voice tag: players show the name, and captions styled per voice.
            text = f"<v {_vtt_escaped(segment.speaker).replace('>', '&gt;')}>{text}"
        timing = f"{subtitle_time(segment.start, '.')} --> {subtitle_time(segment.end, '.')}"
        blocks.append(f"{timing}\n{text}\n\n")
    return "".join(blocks)


def _vtt_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")
