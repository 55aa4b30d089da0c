"""One race, written once: a piece of work against a reason to give it up.

The engine races a request's work against its client hanging up (:mod:`.disconnect`); the
router also races an upstream attempt against its backend being lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

ResultT = TypeVar("ResultT")


async def cancel_unless(
    work: Awaitable[ResultT], stop: Awaitable[object], error: Callable[[], BaseException]
) -> ResultT:
    """Await ``work``; if ``stop`` finishes first, cancel ``work`` and raise ``error()``.

    ``stop`` is always cancelled once the race is over; if the caller is cancelled, so is
    ``work``.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(stop)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise error()
