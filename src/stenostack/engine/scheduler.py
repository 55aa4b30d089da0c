"""One model's scheduler: it runs the steps of every in-flight request in shared batches.

Each request is a job (see :mod:`stenostack.models.base`) with one step pending, or a group
of independent ones (a long file's windows side by side). Each of the model's lanes has a
thread that repeatedly takes a step to lead the next batch, batches it with every other
pending step of the same shape (up to the model's cap), its own job's included, runs that
one model call and hands each job its result once its whole group has run. Within a class
of work (uploaded files, live turns) the leader is the step of the job that has waited
longest, and a job that led a batch goes to the back with whatever it still has pending: a
long file gets one batch and then waits its turn, so short requests that arrive behind it
are not starved. Across classes, the one that has had least model time leads
(:mod:`stenostack.engine.fair_share`), so 64 flooding live sessions delay a file by about
one batch per step, not 64; the batch it leads still takes every compatible step of either
class.

A lone request runs at once. Only while other requests are being decoded (and so about to
arrive) does the scheduler hold a batch back, for at most the gather window, to let them
join it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from stenostack.engine.fair_share import FairShare
from stenostack.metrics import EngineMetrics
from stenostack.models.base import (
    ModelStep,
    SpeechToTextModel,
    StepGroup,
    StepRequest,
    Transcript,
    TranscriptionJob,
)

log = logging.getLogger(__name__)

#: What a job is, for sharing model time: an uploaded file, or a live (realtime) turn.
WorkClass = Literal["file", "live"]


@dataclass(eq=False)
class _Entry:
    job: TranscriptionJob
    future: Future[Transcript]
    submitted_at: float
    work_class: WorkClass
    request: StepRequest | None = None  # None until the job has been run up to its first step
    # The request's steps, their results so far, and the steps not yet taken into a batch.
    steps: tuple[ModelStep, ...] = ()
    results: list[Any] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    running: int = 0  # steps of the request in batches under way
    ready_since: float = 0.0
    advancing: bool = False  # a lane is running the job's code: it cannot be closed now
    started: bool = False
    cancelled: bool = False

    def ask(self, request: StepRequest) -> None:
        self.request = request
        self.steps = request.steps if isinstance(request, StepGroup) else (request,)
        self.results = [None] * len(self.steps)
        self.waiting = list(range(len(self.steps)))
        self.ready_since = time.perf_counter()

    def answer(self) -> Any:
        """The request's result, once every step has run: a list for a group."""
        return self.results if isinstance(self.request, StepGroup) else self.results[0]


@dataclass(frozen=True)
class _Part:
    """One step of a job's request, taken into a batch."""

    entry: _Entry
    index: int

    @property
    def step(self) -> ModelStep:
        return self.entry.steps[self.index]


@dataclass(eq=False)
class Ticket:
    """A submitted job: its future, and a way to drop its remaining steps."""

    future: Future[Transcript]
    _cancel: Callable[[], None] = field(repr=False)

    def cancel(self) -> None:
        self._cancel()


class BatchScheduler:
    def __init__(
        self,
        model_name: str,
        model: SpeechToTextModel,
        metrics: EngineMetrics,
        gather_window_s: float,
    ) -> None:
        self.model_name = model_name
        self.model = model
        self.gather_window_s = gather_window_s
        self._metrics = metrics
        self._cond = threading.Condition()
        self._entries: list[_Entry] = []
        self._preparing = 0
        self._prepare_count = 0  # requests that have started preparing, ever
        self._gave_up_on = 0  # the count at which a gather last timed out
        self._closed = False
        # Total time in model calls: with the audio finished, the speed Retry-After uses.
        self._busy_seconds = 0.0
        self._share = FairShare[WorkClass](get_args(WorkClass))
        # One thread per lane: a model with two lanes runs two batches at once.
        self._threads = [
            threading.Thread(
                target=self._run,
                name=f"scheduler-{model_name}" + (f"-{lane}" if model.lanes > 1 else ""),
                daemon=True,
            )
            for lane in range(model.lanes)
        ]
        for thread in self._threads:
            thread.start()

    # -- called from the event loop ------------------------------------------------------

    def preparing(self) -> _Preparing:
        """Mark a request as on its way (being decoded), so batches may wait for it."""
        return _Preparing(self)

    def submit(self, job: TranscriptionJob, work_class: WorkClass = "file") -> Ticket:
        entry = _Entry(
            job=job, future=Future(), submitted_at=time.perf_counter(), work_class=work_class
        )
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is shut down")
            self._entries.append(entry)
            self._metrics.waiting.labels(self.model_name).inc()
            self._cond.notify_all()
        return Ticket(entry.future, lambda: self._cancel(entry))

    def busy_seconds(self) -> float:
        """Total time the model has spent in batched calls so far."""
        return self._busy_seconds

    def close(self) -> None:
        with self._cond:
            self._closed = True
            entries, self._entries = self._entries, []
            self._cond.notify_all()
        for entry in entries:
            entry.job.close()
            _cancel_future(entry.future)

    def join(self, deadline: float) -> None:
        """Wait, until ``deadline`` (``time.monotonic()``), for the threads to leave the
        model once closed: a process that exits while one is inside a CTranslate2 call
        aborts ("terminate called without an active exception")."""
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    # -- the scheduler thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            steps = [part.step for part in batch]
            kind = type(steps[0]).__name__
            self._metrics.batch_size.labels(self.model_name, kind).observe(len(steps))
            started = time.perf_counter()
            try:
                results = self.model.run_batch(steps)
            except Exception as exc:  # a model failure fails this batch, not the scheduler
                log.exception("%s: a %s batch of %d failed", self.model_name, kind, len(steps))
                results = None
                for entry in _entries_of(batch):
                    self._finish(entry, error=exc)
            finally:
                elapsed = time.perf_counter() - started
            answered = self._take_results(batch, results, elapsed)
            for entry in answered:
                self._advance(entry, entry.answer())
            if answered:
                with self._cond:
                    self._cond.notify_all()  # other lanes may now take their next steps

    def _take_results(
        self, batch: list[_Part], results: list[Any] | None, elapsed: float
    ) -> list[_Entry]:
        """Note a finished batch; return the jobs whose whole request has now run."""
        with self._cond:
            self._busy_seconds += elapsed
            self._share.charge(elapsed, (part.entry.work_class for part in batch))
            now = time.perf_counter()
            for position, part in enumerate(batch):
                part.entry.running -= 1
                if results is not None:
                    part.entry.results[part.index] = results[position]
            answered = []
            for entry in _entries_of(batch):
                if entry not in self._entries:  # finished meanwhile (failed or cancelled)
                    continue
                if entry.waiting:
                    entry.ready_since = now  # the rest of its group waits its turn
                elif entry.running == 0:
                    entry.advancing = True
                    answered.append(entry)
            return answered

    def _next_batch(self) -> list[_Part] | None:
        """Wait for pending steps; return the batch to run next (None once closed)."""
        gathered = False
        while True:
            with self._cond:
                while not self._closed and not self._entries:
                    self._cond.wait()
                if self._closed:
                    return None
                self._drop_cancelled()
                fresh = self._unclaimed()
                for entry in fresh:
                    entry.advancing = True
            for entry in fresh:  # run each new job up to its first step
                self._advance(entry, None)
            with self._cond:
                if fresh:
                    self._cond.notify_all()
                self._drop_cancelled()
                batch = self._pick()
                if not batch:
                    # Wait, unless a job came in meanwhile (another lane running a new job
                    # up to its first step is not one: this lane waits for it too).
                    if not self._unclaimed():
                        self._cond.wait(self.gather_window_s)
                    continue
                if not gathered and self._worth_gathering(batch):
                    # Requests are being decoded: give them one short chance to join.
                    gathered = True
                    deadline = time.perf_counter() + self.gather_window_s
                    while self._preparing and (remaining := deadline - time.perf_counter()) > 0:
                        self._cond.wait(remaining)
                        if any(entry.request is None for entry in self._entries):
                            break
                    else:  # nobody came: do not wait for these again
                        self._gave_up_on = self._prepare_count
                    continue
                now = time.perf_counter()
                for part in batch:
                    part.entry.waiting.remove(part.index)
                    part.entry.running += 1
                for entry in _entries_of(batch):
                    if not entry.started:
                        entry.started = True
                        self._metrics.waiting.labels(self.model_name).dec()
                        self._metrics.running.labels(self.model_name).inc()
                        self._metrics.queue_time.labels(self.model_name).observe(
                            now - entry.submitted_at
                        )
                return batch

    def _unclaimed(self) -> list[_Entry]:
        """New jobs no lane has yet begun to run up to their first step."""
        return [e for e in self._entries if e.request is None and not e.advancing]

    def _pick(self) -> list[_Part]:
        ready = [e for e in self._entries if e.waiting and not e.cancelled]
        if not ready:
            return []
        ready.sort(key=lambda entry: entry.ready_since)
        oldest: dict[WorkClass, _Entry] = {}
        for entry in ready:
            oldest.setdefault(entry.work_class, entry)
        leading = self._share.leader(list(oldest))
        ready.sort(key=lambda entry: entry.work_class != leading)  # stable: each by age
        lead = _Part(oldest[leading], oldest[leading].waiting[0])
        key = lead.step.batch_key
        same = [
            _Part(entry, index)
            for entry in ready
            for index in entry.waiting
            if entry.steps[index].batch_key == key
        ]
        return same[: self.model.max_batch_size(lead.step)]

    def _worth_gathering(self, batch: list[_Part]) -> bool:
        """Whether requests on their way could still fill this batch.

        Each request being decoded is waited for once at most: a slow decode (a long
        file) must not tax every batch it overlaps with.
        """
        if len(batch) >= self.model.max_batch_size(batch[0].step):
            return False
        return self._preparing > 0 and self._prepare_count != self._gave_up_on

    def _advance(self, entry: _Entry, result: Any) -> None:
        """Send ``result`` into the job (marked ``advancing`` by the caller, under the lock);
        keep its next request, or finish it."""
        try:
            if entry.cancelled:
                self._finish(entry)
                return
            try:
                request = entry.job.send(result)
            except StopIteration as done:
                self._finish(entry, transcript=done.value)
                return
            except Exception as exc:
                if not entry.cancelled:  # a cancelled job may fail as its input is taken away
                    log.exception("%s: a transcription job failed", self.model_name)
                self._finish(entry, error=exc)
                return
            with self._cond:
                entry.ask(request)
        finally:
            with self._cond:
                entry.advancing = False

    def _finish(
        self,
        entry: _Entry,
        transcript: Transcript | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._cond:
            if entry not in self._entries:
                return
            self._entries.remove(entry)
            gauge = self._metrics.running if entry.started else self._metrics.waiting
            gauge.labels(self.model_name).dec()
        entry.request, entry.waiting = None, []
        if entry.future.cancelled():
            # The caller gave up (its awaiting task was cancelled) while the job still ran a
            # step, which may since have finished it or failed: nobody wants the outcome.
            entry.job.close()
        elif transcript is not None:
            entry.future.set_result(transcript)
        elif error is not None:
            entry.future.set_exception(error)
        else:
            entry.job.close()
            _cancel_future(entry.future)

    def _drop_cancelled(self) -> None:
        # One that a lane is advancing is finished by that lane, or here once it stops.
        for entry in [e for e in self._entries if e.cancelled and not e.advancing]:
            self._finish(entry)  # the condition's lock is re-entrant

    def _cancel(self, entry: _Entry) -> None:
        with self._cond:
            entry.cancelled = True
            self._cond.notify_all()


class _Preparing:
    def __init__(self, scheduler: BatchScheduler) -> None:
        self._scheduler = scheduler

    def __enter__(self) -> None:
        with self._scheduler._cond:
            self._scheduler._preparing += 1
            self._scheduler._prepare_count += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._scheduler._cond:
            self._scheduler._preparing -= 1
            self._scheduler._cond.notify_all()


def _entries_of(batch: list[_Part]) -> list[_Entry]:
    """The jobs with steps in ``batch``, each once, in order."""
    return list({id(part.entry): part.entry for part in batch}.values())


def _cancel_future(future: Future[Transcript]) -> None:
    """Cancel, and wake ``concurrent.futures.wait`` callers too (``cancel`` alone does not)."""
    if future.cancel():
        future.set_running_or_notify_cancel()
