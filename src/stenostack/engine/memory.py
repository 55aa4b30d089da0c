"""Handing freed memory back to the system once the engine is idle, and fewer arenas.

glibc keeps the memory a burst or a long decode freed in its arenas (one per thread that
allocated), so the process stays hundreds of MB above idle long after; ``malloc_trim(0)``
returns the free pages of every arena. Elsewhere (musl, macOS) this does nothing.

The engine's threads (decode lanes, the model's lanes, the diarization thread) each get an
arena of their own by default, up to eight per core, each keeping what it freed for reuse by
its own thread only. Two arenas in all keep the peak far lower: a 60-minute meeting
transcribed and diarized (whisper-tiny.en, 2 cores) peaked at 1608 MB with glibc's default
and at 1213 MB with two arenas, in the same time (172 s and 178 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)


def _libc_function(
    name: str, argtypes: list[type[ctypes._SimpleCData[int]]]
) -> ctypes._NamedFuncPointer | None:
    """glibc's ``name`` returning an int, or None where there is no such function."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_TRIM = _libc_function("malloc_trim", [ctypes.c_size_t])
# mallopt's parameter for the most arenas glibc makes (M_ARENA_MAX in malloc.h).
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Let glibc make at most ``MALLOC_ARENAS`` arenas (call before threads start)."""
    mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is not None and not mallopt(M_ARENA_MAX, MALLOC_ARENAS):
        log.warning("mallopt(M_ARENA_MAX) failed; glibc keeps its default arenas")


_trimming = threading.Lock()


def release_free_memory() -> None:
    """Return free heap pages to the system (a few ms; skipped if a trim is under way)."""
    if _TRIM is None or not _trimming.acquire(blocking=False):
        return
    try:
        _TRIM(0)
    finally:
        _trimming.release()
