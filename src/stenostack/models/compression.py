"""How well decoded text compresses: a decoder that loops makes text that compresses well."""

from __future__ import annotations

import zlib


def compression_ratio(text: str) -> float:
    """How well the text compresses: looping output compresses far better than speech."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))
