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


# Languages scored by characters, since their words are not separated by spaces.
BY_CHARACTERS = frozenset({"ja", "zh", "ko", "yue", "th", "lo", "my"})


def error_rate(language: str, references: list[str], hypotheses: list[str]) -> float:
    """WER over all of a language's clips together, or CER where words are not spaced."""
    refs = [normalise(text) for text in references]
    hyps = [normalise(text) for text in hypotheses]
    if language in BY_CHARACTERS:
        refs, hyps = [r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps]
        rate: float = jiwer.cer(refs, [h or "-" for h in hyps])
        return rate
    rate = jiwer.wer(refs, [h or "<empty>" for h in hyps])
    return rate
