"""Where a window under 30 s may be encoded with an input sized to it, instead of padded.

Whisper was trained on 30 s inputs. A sized input is faster on short clips, but it may change
what the decoder hears. The rule below was decided by measurement against faster-whisper on
the same model and settings (``python -m benchmarks.accuracy_vs_faster_whisper``); a language
or model not measured is padded.
"""

from __future__ import annotations

from enum import StrEnum


class InputSizing(StrEnum):
    BY_RULE = "by-rule"  # sized only where the measurements below allow it
    ALWAYS = "always"  # every short window sized (for the benchmarks)
    NEVER = "never"  # every window padded to 30 s, as Whisper was trained


# Languages whose short windows may be sized, on a multilingual and an English-only model.
# None, as measured (error rates; sized / padded / faster-whisper greedy, int8, 2 threads;
# ``python -m benchmarks.accuracy_vs_faster_whisper --languages en es it --english-clips 40
# --modes given --no-real``; a window's features past its audio are zeros, as faster-whisper
# pads them):
# - whisper-base, espeak-ng, language given: English (44 clips) 7.2 / 7.2 / 7.2 %, Spanish
#   23.3 / 14.0 / 14.0 %, Italian 53.3 / 50.0 / 50.0 %;
# - whisper-base, real speech in es de fr it pt ja ko ru zh, language detected (issue 12,
#   before the zero features): 23.7 / 17.5 / 18.4 %;
# - whisper-tiny.en, the same 44 English clips: 8.9 / 8.0 / 8.0 %.
# Sized inputs cost words outside English on base and in English on tiny.en, so every
# window is padded; that gives up a 2.7x (tiny.en) and 3.2x (base) speed-up on short clips
# (``python -m benchmarks.short_inputs --clips 40``). Measure again before adding one.
SIZED_MULTILINGUAL: frozenset[str] = frozenset()
SIZED_ENGLISH_ONLY: frozenset[str] = frozenset()


def sized_input_allowed(sizing: InputSizing, multilingual: bool, language: str | None) -> bool:
    """Whether a short window in ``language`` (None: not yet detected) may be sized."""
    if sizing is not InputSizing.BY_RULE:
        return sizing is InputSizing.ALWAYS
    allowed = SIZED_MULTILINGUAL if multilingual else SIZED_ENGLISH_ONLY
    # Detection runs on the first window's encoding, so before the language is known the
    # window is padded unless every language may be sized.
    return language in allowed
