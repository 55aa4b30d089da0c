"""Sharing model time fairly between classes of work (uploaded files, live turns).

Within a class the scheduler takes the oldest step first, so a class's wait grows with its
own requests in flight; across classes it must not: 64 live sessions must not push a file
back by 64 steps, nor many long files hold back a live turn. Each class is charged the model
time its steps used (a shared batch split by step count), and the class that has had least
leads the next batch, as in fair queueing with equal weights. A class with nothing waiting
is brought level with those that are, so idling banks no credit to spend later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

Class = TypeVar("Class")


class FairShare(Generic[Class]):
    def __init__(self, classes: Iterable[Class]) -> None:
        self._served: dict[Class, float] = dict.fromkeys(classes, 0.0)

    def leader(self, waiting: Sequence[Class]) -> Class:
        """The class to lead the next batch, of ``waiting`` (ordered oldest first, which
        breaks ties)."""
        level = min(self._served[name] for name in waiting)
        for name, served in self._served.items():
            if name not in waiting:
                self._served[name] = max(served, level)
        return min(waiting, key=self._served.__getitem__)

    def charge(self, seconds: float, steps: Iterable[Class]) -> None:
        """Charge one batch's ``seconds`` to the classes of its ``steps``, by step count."""
        counts = Counter(steps)
        total = sum(counts.values())
        for name, count in counts.items():
            self._served[name] += seconds * count / total
