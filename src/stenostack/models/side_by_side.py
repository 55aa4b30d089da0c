"""Independent pieces of one transcription run side by side, as one job.

A long file cut at pauses into pieces that are decoded without each other's text is many
small jobs. :func:`side_by_side` runs them as one: each round it yields the next step of
every running piece as one :class:`StepGroup`, so that their steps share model calls (one
decode call for sixteen windows instead of sixteen), and it starts new pieces as others
finish. The first piece, whose words a streaming caller waits for, runs alone; the rest
then start together, so that their steps stay in step (all encoding, then all decoding)
and the decoding calls are full.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from stenostack.models.base import ModelStep, StepGroup, StepRequest

#: One piece's work: yields single steps and is sent each result.
PieceJob = Generator[ModelStep, Any, None]

#: ``next_piece(wait, index)``: the job of the next piece, numbered ``index``; None when
#: there are no more or, if ``wait`` is false, when the next is not ready yet (its audio
#: still being decoded).
PieceSource = Callable[[bool, int], PieceJob | None]


@dataclass
class _Running:
    index: int
    job: PieceJob
    step: ModelStep


def side_by_side(
    next_piece: PieceSource, on_done: Callable[[int], None], max_width: int
) -> Generator[StepRequest, Any, None]:
    """Run pieces, at most ``max_width`` at once; ``on_done(index)`` is called as each
    finishes (not necessarily in order)."""
    running: list[_Running] = []
    started = 0
    width = 1
    more = True
    while True:
        while more and len(running) < width:
            # Wait for a piece's audio only when nothing else could use the model meanwhile.
            job = next_piece(not running, started)
            if job is None:
                more = bool(running)
                break
            index, started = started, started + 1
            try:
                running.append(_Running(index, job, next(job)))
            except StopIteration:
                on_done(index)
        if not running:
            if more:
                continue
            return
        if len(running) == 1:
            results = [(yield running[0].step)]
        else:
            results = yield StepGroup(tuple(piece.step for piece in running))
        still_running = []
        for piece, result in zip(running, results, strict=True):
            try:
                piece.step = piece.job.send(result)
                still_running.append(piece)
            except StopIteration:
                on_done(piece.index)
        running = still_running
        if all(piece.index != 0 for piece in running):
            width = max_width  # the first piece is done
