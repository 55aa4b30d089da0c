"""What ``transcribe`` shows while it works, on stderr.

On a terminal, two tqdm bars over audio time: all files, and the one being transcribed,
with each file's outcome written above them. Anywhere else (a pipe, a log file), one plain
line per file as it ends, with no bar control characters.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from stenostack.transcribe.inputs import Job

BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"
# The longest file name a bar shows (its tail: the end of a path tells files apart).
MAX_LABEL_CHARS = 40


class Progress(Protocol):
    """Told of each file as it starts, moves on and ends."""

    def file_started(self, job: Job, seconds: float | None) -> None:
        """``job`` starts; it holds about ``seconds`` of audio (None: unknown)."""

    def file_progress(self, position: float) -> None:
        """The file being transcribed is done up to ``position`` seconds of its audio."""

    def file_done(self, job: Job, audio_seconds: float) -> None: ...

    def file_skipped(self, job: Job) -> None: ...

    def file_failed(self, job: Job, message: str) -> None: ...

    def message(self, text: str) -> None:
        """A line of its own (the summary, a warning)."""

    def close(self) -> None: ...


def make_progress(total_seconds: float, files: int, stream: TextIO | None = None) -> Progress:
    """Bars when ``stream`` (stderr) is a terminal, plain lines when it is not."""
    stream = stream or sys.stderr
    if stream.isatty():
        return TerminalProgress(total_seconds, files, stream)
    return LineLog(stream)


def done_line(job: Job, audio_seconds: float, elapsed: float) -> str:
    return f"{job.label} -> {job.output} ({audio_seconds:.1f} s audio in {elapsed:.1f} s)"


def skipped_line(job: Job) -> str:
    return f"{job.label}: skipped: {job.output} exists (--overwrite replaces it)"


def failed_line(job: Job, message: str) -> str:
    return f"{job.label}: error: {message}"


class LineLog:
    """One line per file as it ends."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._started = time.monotonic()

    def file_started(self, job: Job, seconds: float | None) -> None:
        self._started = time.monotonic()

    def file_progress(self, position: float) -> None:
        pass

    def file_done(self, job: Job, audio_seconds: float) -> None:
        self.message(done_line(job, audio_seconds, time.monotonic() - self._started))

    def file_skipped(self, job: Job) -> None:
        self.message(skipped_line(job))

    def file_failed(self, job: Job, message: str) -> None:
        self.message(failed_line(job, message))

    def message(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def close(self) -> None:
        pass


class TerminalProgress:
    """A bar for all files above one for the file being transcribed, in audio seconds;
    each file's line is written above both as it ends."""

    def __init__(self, total_seconds: float, files: int, stream: TextIO) -> None:
        self._stream = stream
        self._overall = _Bar(
            tqdm(
                total=max(total_seconds, 0.1),
                desc=f"all {files} file{'s' if files != 1 else ''}",
                bar_format=BAR_FORMAT,
                file=stream,
                position=0,
                leave=True,
                dynamic_ncols=True,
            ),
            max(total_seconds, 0.1),
        )
        self._file: _Bar | None = None
        self._done_before = 0.0  # the overall count at the current file's start
        self._started = time.monotonic()

    def file_started(self, job: Job, seconds: float | None) -> None:
        self._close_file()
        self._started = time.monotonic()
        self._done_before = self._overall.count
        total = max(seconds or 0.0, 0.1)
        self._file = _Bar(
            tqdm(
                total=total,
                desc=_short(job.label),
                bar_format=BAR_FORMAT,
                file=self._stream,
                position=1,
                leave=False,
                dynamic_ncols=True,
            ),
            total,
        )

    def file_progress(self, position: float) -> None:
        if self._file is None:
            return
        self._file.move_to(position)
        self._overall.move_to(self._done_before + self._file.count)

    def file_done(self, job: Job, audio_seconds: float) -> None:
        self._finish(done_line(job, audio_seconds, time.monotonic() - self._started))

    def file_skipped(self, job: Job) -> None:
        self.message(skipped_line(job))

    def file_failed(self, job: Job, message: str) -> None:
        self._finish(failed_line(job, message))

    def _finish(self, line: str) -> None:
        """The file's line above the bars, and the overall bar past the file."""
        seconds = self._file.total if self._file is not None else 0.0
        self._close_file()
        self._overall.move_to(self._done_before + seconds)
        self._done_before = self._overall.count
        self.message(line)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.bar.close()
            self._file = None

    def message(self, text: str) -> None:
        tqdm.write(text, file=self._stream)

    def close(self) -> None:
        self._close_file()
        self._overall.bar.close()


class _Bar:
    """A tqdm bar that only moves forward, within its total."""

    def __init__(self, bar: tqdm[Any], total: float) -> None:
        self.bar = bar
        self.total = total
        self.count = 0.0

    def move_to(self, position: float) -> None:
        position = min(position, self.total)
        if position > self.count:
            self.bar.update(position - self.count)
            self.count = position


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else "…" + label[-(MAX_LABEL_CHARS - 1) :]
