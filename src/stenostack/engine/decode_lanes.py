"""Decoding admitted like model work: a few threads, the shortest file first.

Every file is decoded (and its speech found) on this pool. Jobs wait in order of their
expected length, so a short clip never queues behind long files, and long files may hold
only some of the threads at once, so one is always free for short ones: a burst of hour-long
uploads (or files built to decode to hours) cannot stall a three-second clip.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Job:
    seconds: float
    order: int
    run: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)

    def is_long(self, long_seconds: float) -> bool:
        return self.seconds > long_seconds


class DecodeLanes:
    """A thread pool that runs the shortest waiting job first, with long jobs capped."""

    def __init__(
        self,
        workers: int,
        long_seconds: float,
        max_long: int,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.long_seconds = long_seconds
        self.max_long = max_long
        self._on_idle = on_idle
        self._cond = threading.Condition()
        self._waiting: list[_Job] = []
        self._running = 0
        self._running_long = 0
        self._order = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"decode-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, seconds: float, work: Callable[[], T]) -> T:
        """Run ``work`` on a decode thread, ordered by ``seconds`` (the audio it expects).

        Cancelling the caller drops a job that has not started.
        """
        future: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the decode lanes are shut down")
            heapq.heappush(self._waiting, _Job(seconds, next(self._order), work, future))
            self._cond.notify()
        return await asyncio.wrap_future(future)

    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            waiting, self._waiting = self._waiting, []
            self._cond.notify_all()
        for job in waiting:
            job.future.cancel()

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._next()
                while job is None and not self._closed:
                    self._cond.wait()
                    job = self._next()
                if job is None:
                    return
                is_long = job.is_long(self.long_seconds)
                self._running += 1
                self._running_long += is_long
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        job.future.set_result(job.run())
                    except BaseException as exc:
                        job.future.set_exception(exc)
            finally:
                with self._cond:
                    self._running -= 1
                    self._running_long -= is_long
                    idle = self._running == 0 and not self._waiting
                    self._cond.notify()
                if idle and self._on_idle is not None:
                    self._on_idle()

    def _next(self) -> _Job | None:
        """The shortest waiting job, unless it is long and the long ones have their share
        (then so is every other waiting job). Called with the lock held."""
        if not self._waiting:
            return None
        shortest = self._waiting[0]
        if shortest.is_long(self.long_seconds) and self._running_long >= self.max_long:
            return None
        return heapq.heappop(self._waiting)
