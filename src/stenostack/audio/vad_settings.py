"""OpenAI's ``server_vad`` knobs, and their defaults for uploaded files and for live turns.

Uploads take them as ``chunking_strategy``, realtime sessions as ``turn_detection``; the
file VAD (:mod:`stenostack.audio.vad`) and the turn detector (:mod:`stenostack.audio.turns`)
both read them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VadSettings:
    threshold: float  # speech probability at which a frame counts as speech
    prefix_padding_ms: int  # audio kept before speech starts
    silence_duration_ms: int  # silence that ends speech


# Files: only long silences are cut, with generous padding, so that no word at the edge of
# speech is lost (faster-whisper's own defaults).
FILE_VAD = VadSettings(threshold=0.5, prefix_padding_ms=400, silence_duration_ms=2000)
# Live turns: OpenAI's realtime defaults, so a turn ends half a second after its speech.
LIVE_TURN_VAD = VadSettings(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
