"""Word error rate on normalised text (jiwer does the alignment)."""

from __future__ import annotations

import re

import jiwer

_NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
            "7": "seven", "8": "eight", "9": "nine", "10": "ten"}  # fmt: skip


def normalise(text: str) -> str:
    words = re.sub(r"[^\w\s']", " ", text.lower().replace("-", " ")).split()
    return " ".join(_NUMBERS.get(word, word) for word in words)


def word_error_rate(reference: str, hypothesis: str) -> float:
    rate: float = jiwer.wer(normalise(reference), normalise(hypothesis) or "<empty>")
    return rate
