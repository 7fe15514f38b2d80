"""The explain stage: the samples to do (resume), loaded ahead, explained in groups (xai.pipeline.execution),
their files and figures queued to the writer (xai.pipeline.sample_outputs), each record written last."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import XAIError
from ..io import remove_stale_parts
from ..runtime import children_leave_signals_to_this_process, leave_the_job_process_group
from .execution import Execution, explain_samples, run_group
from .layout import Layout, sample_id
from .records import DONE, SKIPPED, SampleRecord, read_record
from .sample_outputs import Presentation
from .samples import Explained, FailedSample, Sample, as_sample
from .setup import Setup
from .writer import FigureWriter

__all__ = ["ExplainStats", "explain", "explain_samples", "write"]
log = logging.getLogger(__name__)


@dataclass
class ExplainStats:
    requested: int = 0
    resumed: int = 0
    explained: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    model_seconds: float = 0.0
    render_seconds: float = 0.0
    waiting_for_figures_seconds: float = 0.0
    evaluation_forwards: int = 0
    group_size: int = 1  # samples per call (--samples_per_call, halved when a group runs out of memory)


def worker_identity() -> dict[str, Any]:
    """Who explains: host, rank (torchrun's RANK, else 0), process, and when this explain stage began."""
    return {
        "host": socket.gethostname(),
        "rank": int(os.environ.get("RANK", "0")),
        "pid": os.getpid(),
        "session": round(time.time(), 3),
    }


@dataclass
class Records:
    """The samples' records (samples/sample{i}.json) of this explain stage: under the run's key and
    description, by this worker; each one counted in `stats`."""

    layout: Layout
    run_key: dict[str, Any]
    run_info: dict[str, Any]
    stats: ExplainStats
    worker: dict[str, Any] = field(default_factory=worker_identity)

    def complete(self, index: int, name: str, source: str | None, save_raw: bool) -> bool:
        """True when the sample's record says done, for the same image (name, and the photograph's path with
        --images), under this run's key (checkpoint, split, data root, options), its npz holds the raw maps
        if `save_raw` asks for them, and every file it lists exists."""
        files = self.layout.sample(index)
        record = read_record(self.layout.path(files.record))
        return (
            record is not None
            and record.status == DONE
            and record.name == name
            and record.source == source
            and record.run_key == self.run_key
            and (not save_raw or bool(record.run.get("save_raw")))
            and all(self.layout.path(p).is_file() for p in files.all())
        )

    def skip(self, index: int, name: str, error: str, started: float, source: str | None = None) -> None:
        """A record saying why the sample was skipped (finalize lists it; --resume tries it again)."""
        self.stats.skipped.append({"sample": sample_id(index), "image": name, "error": error})
        record = SampleRecord(
            id=sample_id(index),
            index=index,
            name=name,
            source=source,
            status=SKIPPED,
            run_key=self.run_key,
            run=self.run_info,
            started=started,
            finished=time.time(),
            worker=self.worker,
            error=error,
        )
        record.save(self.layout.path(self.layout.sample(index).record))

    def done(self, ex: Explained, rows: list[dict[str, Any]], model_seconds: float, started: float) -> SampleRecord:
        """The record of an explained sample, to be saved once its files exist (`finisher`)."""
        files = self.layout.sample(ex.index)
        record = SampleRecord(
            id=sample_id(ex.index),
            index=ex.index,
            name=ex.name,
            source=ex.source,
            status=DONE,
            run_key=self.run_key,
            run=self.run_info,
            rows=rows,
            figures=files.figures,
            sample_figures=files.sample_figures,
            raw=files.raw,
            explorer=files.explorer,
            seconds={**ex.seconds, "model": model_seconds},
            batch_sizes=ex.batch_sizes,
            started=started,
            worker=self.worker,
        )
        if ex.evaluation is not None:
            record.metrics, record.curves, record.sanity = (
                ex.evaluation.rows,
                ex.evaluation.curves,
                ex.evaluation.sanity,
            )
            record.evaluation_cost = ex.evaluation.cost()
            self.stats.evaluation_forwards += sum(ex.evaluation.forwards.values())
        return record

    def finisher(self, record: SampleRecord) -> Callable[[float, str | None], None]:
        """What the writer calls once the sample's files are written (or one failed): save its record."""

        def finish(render_seconds: float, error: str | None) -> None:
            if error is not None:
                error = f"a figure could not be drawn: {error}"
                self.skip(record.index, record.name, error, record.started, record.source)
                return
            record.seconds["render"] = render_seconds
            record.finished = time.time()
            record.save(self.layout.path(self.layout.sample(record.index).record))
            self.stats.explained += 1

        return finish


def _identity(item: Any) -> Any:
    return item


def _loader_worker_start(_worker_id: int) -> None:
    leave_the_job_process_group()


def _loader(dataset: torch.utils.data.Dataset, indices: list[int]) -> Iterator[Sample | FailedSample]:
    """Prefetch samples in a worker process while the model runs (a worker that leaves Ctrl-C and SIGTERM
    to this process: xai.runtime.children_leave_signals_to_this_process)."""
    subset = torch.utils.data.Subset(dataset, indices)
    workers = 1 if len(indices) > 1 else 0
    loader = torch.utils.data.DataLoader(
        subset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        collate_fn=_identity,
        worker_init_fn=_loader_worker_start if workers else None,
    )
    with children_leave_signals_to_this_process():
        items = iter(loader)
    return (as_sample(item) for item in items)


def _groups(items: Iterator[Sample | FailedSample], size: Callable[[], int]) -> Iterator[list[Any]]:
    """Consecutive samples in groups of at most size() of one input size; a sample that failed to load is
    a group of its own (it is skipped)."""
    group: list[Sample] = []
    for item in items:
        if isinstance(item, FailedSample) or (group and item.letterbox.padded_hw != group[0].letterbox.padded_hw):
            if group:
                yield group
            group = []
        if isinstance(item, FailedSample):
            yield [item]
            continue
        group.append(item)
        if len(group) >= size():
            yield group
            group = []
    if group:
        yield group


def _todo(setup: Setup, indices: list[int], records: Records) -> list[int]:
    """The samples to explain (complete ones are kept with resume), after preparing the output folder."""
    try:
        setup.layout.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XAIError(f"cannot create the output folder {setup.layout.out}: {exc.strerror or exc}") from None
    stale = remove_stale_parts(setup.layout.out)
    if stale:
        log.info("removed %d temporary file(s) left by an earlier run that was killed", stale)
    names, dataset, save_raw = setup.dataset.names, setup.dataset, setup.opts.save_raw
    todo = [
        i for i in indices if not (setup.opts.resume and records.complete(i, names[i], dataset.source(i), save_raw))
    ]
    records.stats.requested, records.stats.resumed = len(indices), len(indices) - len(todo)
    if records.stats.resumed:
        log.info("resume: %d sample(s) already complete, %d to do", records.stats.resumed, len(todo))
    return todo


@dataclass
class _Stage:
    """One explain stage's parts: how samples are explained, how their outputs look, where records go."""

    execution: Execution
    presentation: Presentation
    records: Records
    writer: FigureWriter

    @property
    def stats(self) -> ExplainStats:
        return self.records.stats

    def group(self, group: list[Any]) -> None:
        """Samples explained together: their maps files and figures queued, each one's record once its
        figures exist; a sample that could not be read, or that the model failed on, is skipped."""
        started = time.time()
        if isinstance(group[0], FailedSample):
            failed = group[0]
            self.records.skip(failed.index, failed.name, failed.error, started, failed.source)
            return
        outcomes, seconds = run_group(group, self.execution, explain_samples, self._halve)
        self.stats.model_seconds += seconds
        for outcome in outcomes:
            if outcome.explained is None:
                assert outcome.failure is not None
                sample = outcome.sample
                self.records.skip(sample.index, sample.name, outcome.failure, started, sample.source)
            else:
                self.submit(outcome.explained, outcome.model_seconds, started)

    def _halve(self, size: int) -> None:
        self.stats.group_size = max(1, size // 2)
        log.warning(
            "out of memory with %d samples per call; explaining them one by one, then %d per call",
            size,
            self.stats.group_size,
        )

    def submit(self, ex: Explained, model_seconds: float, started: float) -> None:
        """Queue one explained sample's maps file and figures; its record is written once they exist."""
        files = self.records.layout.sample(ex.index)
        view = self.presentation.view(ex)
        record = self.records.done(ex, self.presentation.summary_rows(view, ex), model_seconds, started)
        jobs = [self.presentation.maps_file_job(ex, files), *self.presentation.figure_jobs(view, files)]
        jobs.append(self.presentation.explorer_job(ex, view, files))
        self.writer.submit(jobs, self.records.finisher(record))

    def throughput(self, done: int) -> dict[str, str]:
        maps = (done - len(self.stats.skipped)) * len(self.execution.class_ids) * len(self.execution.engines)
        postfix = {"maps/s": f"{maps / max(self.stats.model_seconds, 1e-9):.2f}"}
        if self.stats.evaluation_forwards:
            postfix["fwd/s"] = f"{self.stats.evaluation_forwards / max(self.stats.model_seconds, 1e-9):.1f}"
        return postfix


def explain(setup: Setup, indices: list[int] | None = None) -> ExplainStats:
    """The explain stage over `indices` (default: the run's samples); complete samples are kept with resume."""
    opts = setup.opts
    records = Records(setup.layout, setup.run_key, setup.run_info, ExplainStats())
    todo = _todo(setup, setup.indices if indices is None else indices, records)
    from tqdm.auto import tqdm

    labels = "+".join(setup.label(m) for m in setup.engines)
    what = "photographs" if opts.images else opts.split
    bar = tqdm(total=len(todo), desc=f"{labels} {what}", unit="sample", disable=not opts.progress or not todo)
    stage = _Stage(setup.execution(), setup.presentation(), records, FigureWriter(opts.workers))
    interrupted: KeyboardInterrupt | None = None
    try:
        stage.stats.group_size = opts.samples_per_call
        for group in _groups(_loader(setup.dataset, todo) if todo else iter(()), lambda: stage.stats.group_size):
            stage.group(group)
            bar.update(len(group))
            bar.set_postfix(stage.throughput(bar.n))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the samples in progress are dropped, those explained finish
        interrupted = exc
    except BaseException:
        stage.writer.abort()
        raise
    finally:
        bar.close()
    try:
        stage.writer.close()
    except BaseException:  # a second Ctrl-C while the last figures are drawn: drop them
        stage.writer.abort()
        raise
    if interrupted is not None:
        raise interrupted
    stage.stats.render_seconds = stage.writer.render_seconds
    stage.stats.waiting_for_figures_seconds = stage.writer.wait_seconds
    return stage.stats


def write(setup: Setup, explained: list[Explained]) -> ExplainStats:
    """The files and records of samples explained already (xai.Explanation.save), written as the explain stage
    writes those it explains."""
    records = Records(setup.layout, setup.run_key, setup.run_info, ExplainStats())
    _todo(setup, [ex.index for ex in explained], records)
    stage = _Stage(setup.execution(), setup.presentation(), records, FigureWriter(setup.opts.workers))
    try:
        for ex in explained:
            stage.submit(ex, sum(ex.seconds.values()), time.time())
    except BaseException:
        stage.writer.abort()
        raise
    stage.writer.close()
    return stage.stats
