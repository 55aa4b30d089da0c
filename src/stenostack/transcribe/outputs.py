"""Transcripts rendered as files, with the server's own renderers, and written atomically.

Both ways to a transcript end here: the engine's :class:`Transcript` in process, or one
rebuilt from a server's ``verbose_json`` (:func:`transcript_from_verbose`), so the files
are the same either way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from stenostack.api.formats import SEGMENT_FIELDS, to_srt, to_vtt
from stenostack.models.base import Segment, Transcript

OutputFormat = Literal["srt", "vtt", "txt", "json", "verbose_json"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
# The file extension of each format.
EXTENSIONS: dict[str, str] = {
    "srt": "srt",
    "vtt": "vtt",
    "txt": "txt",
    "json": "json",
    "verbose_json": "json",
}
# verbose_json's fields in the order the server writes them.
VERBOSE_FIELDS = ("task", "language", "duration", "text", "segments", "words", "logprobs", "usage")


@dataclass(frozen=True)
class Result:
    """One file's transcript, and its verbose_json body as the server renders it."""

    transcript: Transcript
    verbose: dict[str, Any]


def render(result: Result, fmt: OutputFormat) -> str:
    """The text of the output file in ``fmt``."""
    transcript = result.transcript
    if fmt == "srt":
        return to_srt(transcript.segments)
    if fmt == "vtt":
        return to_vtt(transcript.segments)
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "json":
        return _json({"text": transcript.text})
    return _json(result.verbose)


def _json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def verbose_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """A server's verbose_json fields, from its body or its stream's done event (which
    carries them among its own), in the server's order."""
    return {name: event[name] for name in VERBOSE_FIELDS if name in event}


def transcript_from_verbose(body: Mapping[str, Any], language: str | None = None) -> Transcript:
    """The transcript a server's verbose_json body shows, as far as the formats need it:
    text, duration and segments (the body lists words apart from segments, and names the
    language in words: ``language`` is the code asked for, if any). Raises ValueError on a
    malformed body."""
    try:
        segments = [_segment(item) for item in body["segments"]]
        return Transcript(
            text=str(body["text"]),
            language=language or "",
            duration=float(body["duration"]),
            segments=segments,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the server's verbose_json is malformed ({exc!r})") from exc


def _segment(item: Mapping[str, Any]) -> Segment:
    fields = {name: item[name] for name in SEGMENT_FIELDS}
    segment = Segment(**fields)
    if item.get("speaker") is not None:
        segment.speaker = str(item["speaker"])
    return segment


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed into place, so
    the path holds either nothing (or what it held) or the whole text, never part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # as an ordinary new file, not mkstemp's 0600
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
