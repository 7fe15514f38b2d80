"""The explain stage: per sample, every engine, the maps, the sample's files and its record."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from ..batching import is_out_of_memory, release_cached_memory
from ..data import IGNORE, Letterbox
from ..errors import OutOfMemory, XAIError, first_line
from ..io import remove_stale_parts
from ..mapfile import MapFile, as_stored, write_maps
from ..methods import get_method
from ..metrics import summary_columns
from ..runtime import children_leave_signals_to_this_process, leave_the_job_process_group
from ..targets import region_masks
from .layout import SampleFiles, sample_id
from .outputs import SampleView
from .records import DONE, SKIPPED, SampleRecord, read_record
from .setup import Setup
from .writer import FigureJob, FigureWriter

log = logging.getLogger(__name__)


@dataclass
class Explained:
    """One sample's results. maps: per method the C'×H×W maps at the model's input resolution (the
    engines' arrays, [0,1] on the photograph's pixels), empty: per method the classes whose region was
    empty (their maps are zeros); rgb and gt on the photograph, pred (input resolution)."""

    index: int
    name: str
    letterbox: Letterbox
    rgb: np.ndarray
    gt: np.ndarray
    gt_input: np.ndarray
    pred_input: np.ndarray
    classes: list[int]
    maps: dict[str, np.ndarray]
    empty: dict[str, list[bool]]
    seconds: dict[str, float]
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per method and the evaluation: what ran
    extra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per method: its maps beside the maps
    raw_extra: dict[str, np.ndarray] = field(default_factory=dict)
    evaluation: Any = None  # xai.evaluation.evaluate.SampleEvaluation with --evaluate

    @functools.cached_property
    def pred(self) -> np.ndarray:
        """The prediction on the photograph."""
        return self.letterbox.to_original(self.pred_input, nearest=True)


DISPLAY_SIDE = 4096  # figures are drawn from a copy of the photograph at most this long on its long side


def display_hw(orig_hw: tuple[int, int], side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """The size of the display copy: the photograph's, or scaled down to `side` on the long side."""
    h, w = orig_hw
    scale = min(1.0, side / max(h, w))
    return (max(1, round(h * scale)), max(1, round(w * scale))) if scale < 1 else (h, w)


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


def explain_samples(items: list[dict[str, Any]], setup: Setup) -> list[Explained]:
    """Run every engine on preprocessed samples of one input size, all of them in one call of each method
    whose maps do not depend on the batch (Explainer.batch_invariant: the sweeps then fill their batches
    with masked images of every sample), the others sample by sample; then the evaluation per sample.
    Each call's maps are rounded once to what the maps file stores (--map_dtype, xai.mapfile.as_stored),
    so the figures, summaries, evaluation and npz see the same values. Each sample's seconds per method
    are its share of the call."""
    boxes: list[Letterbox] = [item["letterbox"] for item in items]
    x = torch.stack([item["image"] for item in items]).to(setup.device)
    valid = torch.from_numpy(np.stack([box.valid() for box in boxes]))
    gt_padded = torch.stack([item["mask"] for item in items]).masked_fill(~valid, IGNORE)  # padding: no class
    per_sample: list[dict[str, tuple[Any, float]]] = [{} for _ in items]
    for method, engine in setup.engines.items():
        calls = [slice(0, len(items))] if engine.batch_invariant else [slice(i, i + 1) for i in range(len(items))]
        for part in calls:
            t0 = time.perf_counter()
            result = engine.explain(x[part], classes=setup.class_ids, gt=gt_padded[part], valid=valid[part])
            share = (time.perf_counter() - t0) / (part.stop - part.start)
            result = dataclasses.replace(result, maps=as_stored(result.maps, setup.opts.map_dtype))
            for k, i in enumerate(range(part.start, part.stop)):
                per_sample[i][method] = (result.sample(k), share)
    return [
        _explained(item, per_sample[i], x[i : i + 1], gt_padded[i : i + 1], valid[i], setup)
        for i, item in enumerate(items)
    ]


def _explained(
    item: dict[str, Any],
    results: dict[str, tuple[Any, float]],
    x: torch.Tensor,
    gt_padded: torch.Tensor,
    valid: torch.Tensor,
    setup: Setup,
) -> Explained:
    """One sample's maps on the host (and its evaluation with --evaluate), from its methods' results."""
    box: Letterbox = item["letterbox"]
    maps: dict[str, np.ndarray] = {}
    empty: dict[str, list[bool]] = {}
    raw_extra: dict[str, np.ndarray] = {}
    extra: dict[str, dict[str, np.ndarray]] = {}
    for method, (result, _) in results.items():
        maps[method] = result.maps[0].cpu().numpy()
        empty[method] = [bool(e) for e in result.empty[0].cpu()]
        spatial = {k: v[0].cpu().numpy() for k, v in result.extra.items() if tuple(v.shape[-2:]) == box.padded_hw}
        extra[method] = spatial
        raw_extra.update({f"{method}_{k}": v for k, v in spatial.items()})
        if setup.opts.save_raw:
            raw_extra[f"{method}_raw"] = result.raw[0].cpu().numpy().astype(np.float32)
            for key, value in result.extra.items():
                if key not in spatial:
                    raw_extra[f"{method}_{key}"] = value[0].cpu().numpy().astype(np.float32)
    first = next(iter(results.values()))[0]
    assert first.prediction is not None
    evaluation = None
    batch_sizes = {m: int(r.stats["batch_size"]) for m, (r, _) in results.items() if "batch_size" in r.stats}
    if setup.evaluator is not None:
        evaluation = setup.evaluator.evaluate(item["index"], x, gt_padded.to(x.device), valid, results)
        if setup.evaluator.batch_size:  # 0: an automatic size that nothing needed yet
            batch_sizes["evaluation"] = setup.evaluator.batch_size
    return Explained(
        index=item["index"],
        name=item["name"],
        letterbox=box,
        rgb=item["rgb"],
        gt=item["gt"],
        gt_input=gt_padded[0].numpy().astype(np.uint8),
        pred_input=first.prediction[0].cpu().numpy().astype(np.uint8),
        classes=list(setup.class_ids),
        maps=maps,
        empty=empty,
        seconds={method: secs for method, (_, secs) in results.items()},
        batch_sizes=batch_sizes,
        extra=extra,
        raw_extra=raw_extra,
        evaluation=evaluation,
    )


def sample_view(ex: Explained, setup: Setup) -> SampleView:
    """What the figures of the sample show, on the photograph (or its display copy, at most DISPLAY_SIDE
    on the long side, for large photographs): each map mapped back through the letterbox, straight to
    that size, so that memory does not grow with the photograph beyond its own pixels."""
    box, names = ex.letterbox, setup.class_names
    hw = display_hw(box.orig_hw)
    if hw == tuple(box.orig_hw):
        rgb, gt, pred = ex.rgb, ex.gt, ex.pred
    else:
        rgb = cv2.resize(ex.rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        gt = cv2.resize(ex.gt, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
        pred = box.to_size(ex.pred_input, hw, nearest=True)
    maps: dict[str, dict[int, np.ndarray | None]] = {}
    notes: dict[str, dict[int, str]] = {}
    for method, stack in ex.maps.items():
        maps[method], notes[method] = {}, {}
        for j, c in enumerate(ex.classes):
            if ex.empty[method][j]:
                maps[method][c] = None
                notes[method][c] = f"class '{names[c]}' absent from its region ({setup.region}): nothing to explain"
            else:
                maps[method][c] = np.clip(box.to_size(stack[j], hw), 0.0, 1.0)
    extra = {
        m: {
            k: box.to_size(v, hw, nearest=not np.issubdtype(v.dtype, np.floating))
            for k, v in per.items()
            if v.ndim == 2
        }
        for m, per in ex.extra.items()
    }
    return SampleView(
        name=ex.name,
        rgb=rgb,
        gt=gt,
        pred=pred,
        class_names=list(names),
        colors=list(setup.colors),
        classes=list(ex.classes),
        region=setup.region,
        labels={m: setup.label(m) for m in ex.maps},
        maps=maps,
        notes=notes,
        regions=_explained_regions(gt, pred, list(ex.classes), setup),
        extra=extra,
        class_agnostic={m for m in ex.maps if not get_method(m).cls.class_specific},
    )


def summary_rows(view: SampleView, ex: Explained, setup: Setup) -> list[dict[str, Any]]:
    """One row per explained class: the prediction's metrics (on the photograph), then each method's map
    metrics (on the figures' copy: the photograph, or its display copy when it is larger) and seconds."""
    assert view.gt is not None  # the pipeline's samples always have their mask
    families = {method: get_method(method).family for method in view.maps}
    seconds = {method: {"seconds": ex.seconds[method]} for method in view.maps}
    rows = []
    for c in setup.class_ids:
        row: dict[str, Any] = {"sample": sample_id(ex.index), "image": ex.name, "class": setup.class_names[c]}
        maps = {method: per_class[c] for method, per_class in view.maps.items()}
        row.update(summary_columns(ex.gt, ex.pred, c, maps, families, maps_gt_pred=(view.gt, view.pred), after=seconds))
        rows.append(row)
    return rows


def _explained_regions(
    gt: np.ndarray, pred: np.ndarray, classes: list[int], setup: Setup
) -> dict[int, np.ndarray | None]:
    """The pixels whose class score was explained, on the photograph, per class (None for region 'all' or
    an empty region); one pass over the photograph for every class."""
    if setup.region == "all":
        return dict.fromkeys(classes)
    masks = region_masks(
        torch.from_numpy(pred)[None].long(),
        torch.from_numpy(gt)[None].long(),
        list(classes),
        setup.region,
        len(setup.class_names),
    )[0].bool()
    return {c: (m.numpy() if bool(m.any()) else None) for c, m in zip(classes, masks, strict=True)}


def figure_jobs(view: SampleView, files: SampleFiles, setup: Setup) -> list[FigureJob]:
    """Every figure of one sample, one job per file, as the run's output kinds declare them."""
    jobs = []
    for kind in setup.layout.kinds:
        if kind.per == "class":
            for c in setup.class_ids:
                args, kwargs = kind.arguments(view, c)
                path = setup.layout.path(files.figures[kind.name][setup.class_names[c]])
                jobs.append(FigureJob(kind.draw, path, args, kwargs))
        else:
            args, kwargs = kind.arguments(view, None)
            jobs.append(FigureJob(kind.draw, setup.layout.path(files.sample_figures[kind.name]), args, kwargs))
    return jobs


def raw_maps_job(ex: Explained, files: SampleFiles, setup: Setup) -> FigureJob:
    """The job that writes raw_maps/sample{i}.npz (xai.mapfile: per method a C×H×W stack at the input
    resolution): done by a worker, as the figures are, so that the model never waits for it."""
    stacks = {}
    for method, stack in ex.maps.items():
        full = np.zeros((len(setup.class_names), *stack.shape[-2:]), dtype=np.float32)
        full[ex.classes] = stack
        stacks[method] = full
    mapfile = MapFile(
        maps=stacks,
        gt=ex.gt,
        pred_input=ex.pred_input,
        gt_input=ex.gt_input,
        letterbox=ex.letterbox,
        class_names=list(setup.class_names),
        class_ids=list(setup.class_ids),
        image_name=ex.name,
        region=setup.region,
        map_dtype=setup.opts.map_dtype,
        extra=ex.raw_extra,
    )
    return FigureJob(write_maps, setup.layout.path(files.raw), (mapfile,), {})


def worker_identity() -> dict[str, Any]:
    """Who explains: host, rank (torchrun's RANK, else 0), process, and when this explain stage began."""
    return {
        "host": socket.gethostname(),
        "rank": int(os.environ.get("RANK", "0")),
        "pid": os.getpid(),
        "session": round(time.time(), 3),
    }


def complete(setup: Setup, index: int) -> bool:
    """True when the sample's record says done, for the same image, under this run's key (checkpoint,
    split, data root, options), its npz holds the raw maps if --save_raw asks for them, and every file
    it lists exists."""
    files = setup.layout.sample(index)
    record = read_record(setup.layout.path(files.record))
    return (
        record is not None
        and record.status == DONE
        and record.name == setup.dataset.names[index]
        and record.run_key == setup.run_key
        and (not setup.opts.save_raw or bool(record.run.get("save_raw")))
        and all(setup.layout.path(p).is_file() for p in files.all())
    )


def _identity(item: Any) -> Any:
    return item


def _loader_worker_start(_worker_id: int) -> None:
    leave_the_job_process_group()


def _loader(setup: Setup, indices: list[int]) -> Iterator[dict[str, Any]]:
    """Prefetch images in a worker process while the model runs (a worker that leaves Ctrl-C and SIGTERM
    to this process: xai.runtime.children_leave_signals_to_this_process)."""
    subset = torch.utils.data.Subset(setup.dataset, indices)
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
        return iter(loader)


def _todo(setup: Setup, indices: list[int]) -> tuple[list[int], ExplainStats]:
    """The samples to explain (complete ones are kept with resume), after preparing the output folder."""
    try:
        setup.layout.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XAIError(f"cannot create the output folder {setup.layout.out}: {exc.strerror or exc}") from None
    stale = remove_stale_parts(setup.layout.out)
    if stale:
        log.info("removed %d temporary file(s) left by an earlier run that was killed", stale)
    todo = [i for i in indices if not (setup.opts.resume and complete(setup, i))]
    stats = ExplainStats(requested=len(indices), resumed=len(indices) - len(todo))
    if stats.resumed:
        log.info("resume: %d sample(s) already complete, %d to do", stats.resumed, len(todo))
    return todo, stats


def explain(setup: Setup, indices: list[int] | None = None) -> ExplainStats:
    """The explain stage over `indices` (default: the run's samples); complete samples are kept with resume."""
    opts = setup.opts
    todo, stats = _todo(setup, setup.indices if indices is None else indices)
    worker = worker_identity()
    from tqdm.auto import tqdm

    labels = "+".join(setup.label(m) for m in setup.engines)
    bar = tqdm(total=len(todo), desc=f"{labels} {opts.split}", unit="sample", disable=not opts.progress or not todo)
    writer = FigureWriter(opts.workers)
    interrupted: KeyboardInterrupt | None = None
    try:
        stats.group_size = opts.samples_per_call
        for group in _groups(_loader(setup, todo) if todo else iter(()), lambda: stats.group_size):
            _explain_group(group, setup, writer, worker, stats)
            bar.update(len(group))
            bar.set_postfix(_throughput(setup, stats, bar.n))
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the samples in progress are dropped, those explained finish
        interrupted = exc
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    try:
        writer.close()
    except BaseException:  # a second Ctrl-C while the last figures are drawn: drop them
        writer.abort()
        raise
    if interrupted is not None:
        raise interrupted
    stats.render_seconds = writer.render_seconds
    stats.waiting_for_figures_seconds = writer.wait_seconds
    return stats


def _throughput(setup: Setup, stats: ExplainStats, done: int) -> dict[str, str]:
    maps = (done - len(stats.skipped)) * len(setup.class_ids) * len(setup.engines)
    postfix = {"maps/s": f"{maps / max(stats.model_seconds, 1e-9):.2f}"}
    if stats.evaluation_forwards:
        postfix["fwd/s"] = f"{stats.evaluation_forwards / max(stats.model_seconds, 1e-9):.1f}"
    return postfix


def _groups(items: Iterator[dict[str, Any]], size: Callable[[], int]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive samples in groups of at most size() of one input size; a sample that failed to load is
    a group of its own (it is skipped)."""
    group: list[dict[str, Any]] = []
    for item in items:
        if "error" in item or (group and item["letterbox"].padded_hw != group[0]["letterbox"].padded_hw):
            if group:
                yield group
            group = []
        if "error" in item:
            yield [item]
            continue
        group.append(item)
        if len(group) >= size():
            yield group
            group = []
    if group:
        yield group


def _explain_group(
    items: list[dict[str, Any]], setup: Setup, writer: FigureWriter, worker: dict[str, Any], stats: ExplainStats
) -> None:
    """Samples explained together: their maps, raw maps files and figures; each one's record once its
    figures exist. A group the model fails on is explained again sample by sample, so that only the
    sample at fault is skipped."""
    started = time.time()
    if "error" in items[0]:
        _skip(setup, items[0]["index"], items[0]["name"], items[0]["error"], worker, started, stats)
        return
    t0 = time.perf_counter()
    failure, out_of_memory = None, False
    try:
        explained = explain_samples(items, setup)
    except XAIError as exc:
        if exc.fatal:
            raise
        failure, out_of_memory = str(exc), isinstance(exc, OutOfMemory)
    except Exception as exc:
        failure, out_of_memory = first_line(exc), is_out_of_memory(exc)
    if failure is not None:  # outside the except: the failed call's tensors are freed with its traceback
        stats.model_seconds += time.perf_counter() - t0
        if len(items) == 1:
            reason = f"the model failed on this sample: {failure}"
            _skip(setup, items[0]["index"], items[0]["name"], reason, worker, started, stats)
            return
        if out_of_memory:
            release_cached_memory(setup.device)
            stats.group_size = max(1, len(items) // 2)
            log.warning(
                "out of memory with %d samples per call; explaining them one by one, then %d per call",
                len(items),
                stats.group_size,
            )
        for item in items:
            _explain_group([item], setup, writer, worker, stats)
        return
    elapsed = time.perf_counter() - t0
    stats.model_seconds += elapsed
    for ex in explained:
        _submit(ex, setup, writer, worker, stats, started, elapsed / len(items))


def _submit(
    ex: Explained,
    setup: Setup,
    writer: FigureWriter,
    worker: dict[str, Any],
    stats: ExplainStats,
    started: float,
    model_seconds: float,
) -> None:
    """Queue one explained sample's raw maps file and figures; its record is written once they exist."""
    files = setup.layout.sample(ex.index)
    view = sample_view(ex, setup)
    record = SampleRecord(
        id=sample_id(ex.index),
        index=ex.index,
        name=ex.name,
        status=DONE,
        run_key=setup.run_key,
        run=setup.run_info,
        rows=summary_rows(view, ex, setup),
        figures=files.figures,
        sample_figures=files.sample_figures,
        raw=files.raw,
        seconds={**ex.seconds, "model": model_seconds},
        batch_sizes=ex.batch_sizes,
        started=started,
        worker=worker,
    )
    if ex.evaluation is not None:
        record.metrics, record.curves, record.sanity = ex.evaluation.rows, ex.evaluation.curves, ex.evaluation.sanity
        record.evaluation_cost = ex.evaluation.cost()
        stats.evaluation_forwards += sum(ex.evaluation.forwards.values())
    jobs = [raw_maps_job(ex, files, setup), *figure_jobs(view, files, setup)]
    writer.submit(jobs, _finisher(setup, record, files, stats))


def _finisher(setup: Setup, record: SampleRecord, files: SampleFiles, stats: ExplainStats):
    def done(render_seconds: float, error: str | None) -> None:
        if error is not None:
            _skip(
                setup,
                record.index,
                record.name,
                f"a figure could not be drawn: {error}",
                record.worker,
                record.started,
                stats,
            )
            return
        record.seconds["render"] = render_seconds
        record.finished = time.time()
        record.save(setup.layout.path(files.record))
        stats.explained += 1

    return done


def _skip(
    setup: Setup, index: int, name: str, error: str, worker: dict[str, Any], started: float, stats: ExplainStats
) -> None:
    """A record saying why the sample was skipped (finalize lists it; --resume tries it again)."""
    stats.skipped.append({"sample": sample_id(index), "image": name, "error": error})
    record = SampleRecord(
        id=sample_id(index),
        index=index,
        name=name,
        status=SKIPPED,
        run_key=setup.run_key,
        run=setup.run_info,
        started=started,
        finished=time.time(),
        worker=worker,
        error=error,
    )
    record.save(setup.layout.path(setup.layout.sample(index).record))
