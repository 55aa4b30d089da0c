"""Handing freed memory back to the system once the engine is idle.

glibc keeps the memory a burst or a long decode freed in its arenas (one per thread that
allocated), so the process stays hundreds of MB above idle long after; ``malloc_trim(0)``
returns the free pages of every arena. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)


def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()
_trimming = threading.Lock()


def release_free_memory() -> None:
    """Return free heap pages to the system (a few ms; skipped if a trim is under way)."""
    if _TRIM is None or not _trimming.acquire(blocking=False):
        return
    try:
        _TRIM(0)
    finally:
        _trimming.release()
