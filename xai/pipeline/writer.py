"""Figures rendered in worker processes while the model works on the next sample.

Each figure is one job (the output kind's draw function and its arguments, see xai.pipeline.outputs);
a sample's jobs go to the N workers as N tasks (`render_figures`), so N workers draw N figures at once,
also of one sample, and what the figures share (the photograph, the masks) is pickled once per task,
not once per figure (pickle keeps one copy of an array that several jobs of a task hold). A
sample is finished (its `done` callback writes its record) as soon as all its figures exist, by a
finisher thread of this process, in submission order: a record on disk always means a complete
sample, and a run killed while the model works on a long sample loses only that sample. At most
`2 × workers` samples wait, so memory stays bounded. workers=0 renders in the calling process.

This module must not import torch: worker processes import it (and the modules of the draw functions,
xai.figures) to unpickle their jobs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ..runtime import children_leave_signals_to_this_process, leave_the_job_process_group


@dataclass
class FigureJob:
    """One figure: draw(path, *args, **kwargs), draw a module-level function (workers import its module)."""

    draw: Callable[..., Any]
    path: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def render_figures(jobs: list[FigureJob]) -> tuple[float, int]:
    """Draw figures one after the other (in a worker process); returns the seconds they took and the
    process id. The first failure is raised: it skips the whole sample anyway."""
    t0 = time.perf_counter()
    for job in jobs:
        job.draw(job.path, *job.args, **job.kwargs)
    return time.perf_counter() - t0, os.getpid()


def tasks(jobs: list[FigureJob], workers: int) -> list[list[FigureJob]]:
    """A sample's jobs dealt round-robin into at most `workers` tasks (none empty)."""
    count = max(1, min(workers, len(jobs)))
    return [jobs[k::count] for k in range(count)]


WORKER_NICENESS = 10


def _worker_start() -> None:
    """Workers leave Ctrl-C and SIGTERM (sent to a job's whole process group) to the main process, which
    finishes or drops samples as a whole and then shuts the pool down; each is one
    unit of parallelism (OpenCV's own thread pool in every worker oversubscribed the cores: on 2 cores,
    2 workers drew 1.05x the figures of 1, and 2x with one OpenCV thread each); matplotlib and its fonts
    load once, before the first job. Workers run at a lower priority (nice +10) than the main process,
    which feeds the model: where the cores are fewer than the workers and the main process, the main
    process gets a core first, and the figures take what is left."""
    import cv2

    leave_the_job_process_group()
    cv2.setNumThreads(1)
    with contextlib.suppress(OSError):  # not permitted here: the same priority as the main process
        os.nice(WORKER_NICENESS)
    from .. import figures  # noqa: F401


def _stops_the_run(exc: BaseException) -> bool:
    """A failure no later sample escapes: a full disk (fatal XAIError) or a file that cannot be written
    (an OSError: permissions, a read-only disk); a figure that fails to draw skips only its sample."""
    return bool(getattr(exc, "fatal", False)) or isinstance(exc, OSError)


@dataclass
class _Pending:
    futures: list[Future]
    done: Callable[[float, str | None], None]  # called with (render seconds, error or None)


class FigureWriter:
    """A pool of figure processes. submit(jobs, done) queues one sample's figures; done(seconds, error)
    runs once they are all drawn (or one failed), in submission order, one call at a time: in the
    finisher thread as soon as the figures exist, or in the calling thread when it waits for them
    (submit with a full queue, close). An exception from done (a full disk) is raised in the calling
    thread by the next submit, poll or close."""

    def __init__(self, workers: int):
        self.workers = max(0, int(workers))
        self.pool: ProcessPoolExecutor | None = None
        self.pending: list[_Pending] = []
        self.render_seconds = 0.0
        self.wait_seconds = 0.0
        self.pids: set[int] = set()  # processes that drew figures
        self._lock = threading.RLock()  # guards pending and serialises the done callbacks
        self._changed = threading.Condition(self._lock)
        self._failure: BaseException | None = None
        self._stopping = False
        self._finisher: threading.Thread | None = None
        if self.workers:
            # spawn: every worker is this process's own child, so it can die with it (a forkserver's
            # workers are the forkserver's children, and it outlived a kill -9 of this process)
            ctx = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_start)
            self._finisher = threading.Thread(target=self._finish_when_drawn, name="figure-finisher", daemon=True)
            self._finisher.start()

    def _notify(self, _future: Future | None = None) -> None:
        with self._changed:
            self._changed.notify_all()

    def _finish_when_drawn(self) -> None:
        """The finisher thread: finish the oldest sample once all its figures are drawn."""
        with self._changed:
            while not self._stopping:
                if self._failure is None and self.pending and all(f.done() for f in self.pending[0].futures):
                    try:
                        self._finish_oldest(block=False)
                    except BaseException as exc:  # handed to the calling thread
                        self._failure = exc
                    continue
                self._changed.wait()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def submit(self, jobs: list[FigureJob], done: Callable[[float, str | None], None]) -> None:
        if self.pool is None:
            seconds, error = 0.0, None
            try:
                seconds, pid = render_figures(jobs)
                self.pids.add(pid)
            except Exception as exc:
                if _stops_the_run(exc):
                    raise
                error = f"{type(exc).__name__}: {exc}"
            self.render_seconds += seconds
            done(seconds, error)
            return
        t0 = time.perf_counter()
        self._raise_failure()
        while len(self.pending) >= 2 * self.workers:
            self._finish_oldest(block=True)
        self.wait_seconds += time.perf_counter() - t0
        futures: list[Future] = []
        try:
            with children_leave_signals_to_this_process():  # workers start on demand
                for task in tasks(jobs, self.workers):
                    futures.append(self.pool.submit(render_figures, task))
        except BaseException:  # Ctrl-C or SIGTERM mid-submit: the sample is dropped, its figures too
            for fut in futures:
                fut.cancel()
            raise
        with self._lock:
            self.pending.append(_Pending(futures, done))
        for fut in futures:
            fut.add_done_callback(self._notify)
        self.poll()

    def poll(self) -> None:
        """Finish every sample at the head of the queue whose figures are all drawn (the finisher thread
        does this by itself; here it happens at once, and a failure of the finisher is raised)."""
        with self._lock:
            self._raise_failure()
            while self.pending and all(f.done() for f in self.pending[0].futures):
                self._finish_oldest(block=False)

    def _finish_oldest(self, block: bool) -> None:
        """Finish the oldest sample; block: wait for its figures first. Nobody waits while holding the
        lock (the pool's result thread takes it to wake the finisher)."""
        while True:
            with self._lock:
                self._raise_failure()
                if not self.pending:
                    return
                head = self.pending[0]
                if all(f.done() for f in head.futures):
                    self._finish(self.pending.pop(0))
                    return
                if not block:
                    return
            wait(head.futures)  # the finisher may finish it meanwhile: then the loop sees the next head

    def _finish(self, item: _Pending) -> None:
        seconds, error = 0.0, None
        for fut in item.futures:
            exc = fut.exception()
            if exc is not None and _stops_the_run(exc):
                raise exc  # a full disk, an unwritable folder: no later sample could be written either
            if exc is not None:
                error = error or f"{type(exc).__name__}: {exc}"
            else:
                spent, pid = fut.result()
                seconds += spent
                self.pids.add(pid)
        self.render_seconds += seconds
        item.done(seconds, error)

    def close(self) -> None:
        """Wait for every queued figure and finish every sample."""
        t0 = time.perf_counter()
        try:
            while self.pending:
                self._finish_oldest(block=True)
            self._raise_failure()
        finally:
            self.wait_seconds += time.perf_counter() - t0
        self.shutdown()

    def abort(self) -> None:
        """Drop what is queued (no record is written for it) and stop the workers."""
        with self._lock:
            for item in self.pending:
                for fut in item.futures:
                    fut.cancel()
            self.pending.clear()
        self.shutdown()

    def shutdown(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._finisher is not None and self._finisher is not threading.current_thread():
            self._finisher.join()
            self._finisher = None
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
