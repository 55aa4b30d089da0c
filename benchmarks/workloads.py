"""The benchmark's speech: short clips and multi-minute files with known words (espeak-ng)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.speech import Recording, compose, wav_bytes
from tests.texts import STORY

SENTENCES = [
    "Please call me back after lunch.",
    "The meeting has been moved to Thursday afternoon.",
    "Turn left at the second traffic light and park behind the bank.",
    "Our quarterly results were better than expected in every region.",
    "Can you send me the slides before the call?",
    "The train to the airport leaves every fifteen minutes.",
    "I would like a large coffee with milk and no sugar.",
    "The weather will be cold and windy for the rest of the week.",
    "She finished the report and sent it to the whole team.",
    "We need three more chairs in the conference room.",
    "The doctor said I should rest for a few days.",
    "His flight was delayed because of the storm.",
    "Remember to water the plants while I am away.",
    "The museum opens at nine and closes at six.",
    "They painted the kitchen a bright shade of yellow.",
    "My password does not work on the new computer.",
    "The library will be closed on public holidays.",
    "He plays the guitar in a small band on weekends.",
    "Could you repeat the last number, please?",
    "The children built a sandcastle near the water.",
    "Dinner is ready, so wash your hands and come to the table.",
    "The package should arrive by Monday morning.",
    "We walked along the beach until the sun went down.",
    "The new software update fixed most of the problems.",
    "I left my umbrella on the bus this morning.",
    "The hotel room had a beautiful view of the mountains.",
    "Our team won the match in the final minute.",
    "The price of fresh fruit went up again this month.",
    "Send the invoice to the finance department.",
    "The garden is full of roses in early summer.",
]
SPEEDS = (120, 140, 160, 175)


@dataclass
class Clip:
    name: str
    recording: Recording
    wav: bytes

    @property
    def duration(self) -> float:
        return self.recording.duration


def short_clips(count: int, seed: int = 0) -> list[Clip]:
    """Clips of 2-10 s: one or two sentences, at several speaking rates."""
    rng = random.Random(seed)
    clips: list[Clip] = []
    while len(clips) < count:
        sentences = rng.sample(SENTENCES, rng.choice((1, 1, 2)))
        speed = rng.choice(SPEEDS)
        parts: list[str | float] = [0.3]
        for sentence in sentences:
            parts += [sentence, 0.4]
        recording = compose(parts, speed=speed)
        if 2.0 <= recording.duration <= 10.0:
            clips.append(Clip(f"short-{len(clips)}", recording, wav_bytes(recording.samples)))
    return clips


def long_files(count: int, minutes: float = 2.5, seed: int = 0) -> list[Clip]:
    """Multi-minute files: the story's sentences in shuffled order, with pauses and noise."""
    rng = random.Random(seed)
    files: list[Clip] = []
    for index in range(count):
        parts: list[str | float] = [0.5]
        while sum(p if isinstance(p, float) else len(p) / 14 for p in parts) < minutes * 60:
            parts += [rng.choice(STORY + SENTENCES), rng.choice((0.5, 0.8, 1.2, 4.0))]
        recording = compose(parts, noise_level=0.002)
        files.append(Clip(f"long-{index}", recording, wav_bytes(recording.samples)))
    return files
