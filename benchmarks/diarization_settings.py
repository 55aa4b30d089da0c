"""The diarization model's settings, measured in process (no server, no transcription):
DER of its turns (collar 0.25 s) and how often it hears the right number of speakers, on
the benchmark's 12 real conversations and 24 more of the same six people (other groups,
other seeds), for the defaults and each change given.

    python -m benchmarks.diarization_settings
    python -m benchmarks.diarization_settings 'cluster_distance=0.75' 'window_step_seconds=5'
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

from benchmarks.conversations import Conversation, assemble, real_conversations, real_speakers
from benchmarks.diarization_metrics import NO_ERRORS, diarization_errors
from stenostack.models.diarization.diarizer import DiarizationSettings, SegmentationDiarizer
from stenostack.models.diarization.sources import load_diarizer

MORE_CONVERSATIONS = 24
MORE_SEED = 1000


def conversations() -> list[Conversation]:
    people = real_speakers()
    names = sorted(people)
    chooser = random.Random(7)
    more = []
    for index in range(MORE_CONVERSATIONS):
        group = chooser.sample(names, 2 + index % 3)
        more.append(
            assemble(
                f"more-{index:02d}", {w: people[w] for w in group}, MORE_SEED + index, real=True
            )
        )
    return real_conversations() + more


def measure(diarizer: SegmentationDiarizer, heard: list[Conversation]) -> str:
    errors, right, started = NO_ERRORS, 0, time.perf_counter()
    for conversation in heard:
        diarization = diarizer.diarize(conversation.samples)
        hypothesis = [(t.start, t.end, str(t.speaker)) for t in diarization.turns]
        errors = errors + diarization_errors(
            conversation.reference, hypothesis, duration=conversation.duration
        )
        right += diarization.speakers == len(conversation.speakers)
    return (
        f"{errors.breakdown()}  count right {right:2d} of {len(heard)}"
        f"  {time.perf_counter() - started:5.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("changes", nargs="*", help="NAME=VALUE of DiarizationSettings")
    args = parser.parse_args()
    heard = conversations()
    diarizer = load_diarizer()
    defaults = DiarizationSettings()
    print(f"{len(heard)} conversations, {sum(c.duration for c in heard):.0f} s of audio")
    for change in ["", *args.changes]:
        fields = dict(item.split("=", 1) for item in change.split(",") if item)
        settings = dataclasses.replace(
            defaults,
            **{name: type(getattr(defaults, name))(value) for name, value in fields.items()},
        )
        diarizer.settings = settings
        print(f"{change or 'defaults':40s} {measure(diarizer, heard)}", flush=True)


if __name__ == "__main__":
    main()
