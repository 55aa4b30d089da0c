"""Which files to transcribe, and where each one's output goes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stenostack.transcribe.failures import UsageError

#: The extensions a directory is searched for (a file named on the command line is tried
#: whatever its extension): audio, and video whose sound track PyAV decodes.
MEDIA_EXTENSIONS = (
    "wav", "mp3", "m4a", "flac", "ogg", "oga", "opus", "webm", "mp4", "mkv", "mov",
    "aac", "wma", "aiff", "aif", "amr", "mka", "m4b", "mpga", "mpeg", "avi", "3gp", "caf",
)  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One input file and the file its transcript is written to."""

    source: Path
    output: Path
    # How the file is named in messages: as given, or below the directory as given.
    label: str


def find_jobs(paths: Sequence[Path], extension: str, output_dir: Path | None) -> list[Job]:
    """Every file to transcribe, in order, once each; raises :class:`UsageError` for a path
    that does not exist or when nothing is found.

    A directory's hidden files and folders are left out. Outputs go next to their input
    (``talk.mp3`` -> ``talk.srt``) or, with ``output_dir``, into it: a file named on its own
    lands at its top, a directory's files keep their layout below it (so two ``a.wav`` in
    different folders do not collide).
    """
    jobs: list[Job] = []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if path.is_dir():
            found = [
                (file, file.relative_to(path), str(file))
                for file in sorted(path.rglob("*"))
                if file.is_file()
                and file.suffix.lower().lstrip(".") in MEDIA_EXTENSIONS
                and not _hidden(file.relative_to(path))
            ]
        else:
            found = [(path, Path(path.name), str(path))]
        for file, relative, label in found:
            key = file.resolve()
            if key in seen:
                continue
            seen.add(key)
            if output_dir is None:
                output = file.with_name(file.stem + "." + extension)
            else:
                output = output_dir / relative.with_name(relative.stem + "." + extension)
            jobs.append(Job(file, output, label))
    if not jobs:
        names = ", ".join(str(path) for path in paths)
        raise UsageError(
            f"no audio or video files found in {names} (looked for "
            f"{', '.join('.' + e for e in MEDIA_EXTENSIONS)})"
        )
    outputs: dict[Path, Job] = {}
    for job in jobs:
        if job.output.resolve() == job.source.resolve():
            raise UsageError(f"{job.label} would be overwritten by its own transcript")
        clash = outputs.get(job.output.resolve())
        if clash is not None:
            raise UsageError(
                f"{clash.label} and {job.label} would both be written to {job.output}; "
                "give them different names or transcribe them separately"
            )
        outputs[job.output.resolve()] = job
    return jobs


def _hidden(relative: Path) -> bool:
    """Whether a file found in a directory is hidden or in a hidden folder (``.git``,
    macOS's ``._talk.mp3`` resource forks): never searched."""
    return any(part.startswith(".") for part in relative.parts)
