"""The explain stage: per sample, every engine, the maps on the photograph, its files and its record."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import XAIError
from ..io import DiskFullError, remove_stale_parts, write_npz
from ..metrics import CLASS_METRICS, MAP_METRICS
from ..runtime import children_leave_signals_to_this_process, leave_the_job_process_group
from ..targets import region_masks
from .layout import SampleFiles, sample_id
from .records import DONE, SKIPPED, SampleRecord, read_record
from .setup import Setup
from .writer import FigureJob, FigureWriter

log = logging.getLogger(__name__)
IGNORE = 255  # ground-truth value of padding pixels: in no class's region


@dataclass
class Explained:
    """One sample's results on the original photograph (padding cropped): rgb, gt and pred (H×W ids),
    and per method and explained class a map in [0,1] or None with the reason."""

    index: int
    name: str
    rgb: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    maps: dict[str, dict[int, np.ndarray | None]]
    notes: dict[str, dict[int, str]]
    seconds: dict[str, float]
    raw_extra: dict[str, np.ndarray] = field(default_factory=dict)
    evaluation: Any = None  # xai.evaluation.evaluate.SampleEvaluation with --evaluate


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


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(a, dtype=np.float32)


def explain_sample(item: dict[str, Any], setup: Setup) -> Explained:
    """Run every engine on one preprocessed sample and map the results back onto the photograph.

    Maps are scaled to [0, 1] on the photograph itself, after the padding is cropped."""
    box = item["letterbox"]
    x = item["image"].unsqueeze(0).to(setup.device)
    valid = torch.zeros(box.padded_hw, dtype=torch.bool)
    valid[: box.resized_hw[0], : box.resized_hw[1]] = True
    gt_padded = item["mask"].masked_fill(~valid, IGNORE).unsqueeze(0)  # padding belongs to no class
    maps: dict[str, dict[int, np.ndarray | None]] = {}
    notes: dict[str, dict[int, str]] = {}
    seconds: dict[str, float] = {}
    raw_extra: dict[str, np.ndarray] = {}
    pred_padded = None
    results = {}
    for method, engine in setup.engines.items():
        t0 = time.perf_counter()
        result = engine.explain(x, classes=setup.class_ids, gt=gt_padded, valid=valid.unsqueeze(0))
        seconds[method] = time.perf_counter() - t0
        results[method] = (result, seconds[method])
        if pred_padded is None and result.prediction is not None:
            pred_padded = result.prediction[0].cpu().numpy().astype(np.uint8)
        maps[method], notes[method] = {}, {}
        for j, c in enumerate(result.classes):
            if bool(result.empty[0, j]):
                maps[method][c] = None
                notes[method][c] = (
                    f"class '{setup.class_names[c]}' absent from its region ({result.region}): nothing to explain"
                )
            else:
                maps[method][c] = _minmax(box.to_original(result.raw[0, j].cpu().numpy()))
        if setup.opts.save_raw:
            raw_extra[f"{method}_raw"] = result.raw[0].cpu().numpy().astype(np.float32)
            raw_extra[f"{method}_weights"] = result.weights[0].cpu().numpy().astype(np.float32)
    assert pred_padded is not None
    evaluation = None
    if setup.evaluator is not None:
        evaluation = setup.evaluator.evaluate(item["index"], x, gt_padded.to(x.device), valid, results)
    return Explained(
        index=item["index"],
        name=item["name"],
        rgb=item["rgb"],
        gt=item["gt"],
        pred=box.to_original(pred_padded, nearest=True),
        maps=maps,
        notes=notes,
        seconds=seconds,
        raw_extra=raw_extra,
        evaluation=evaluation,
    )


def summary_rows(ex: Explained, setup: Setup) -> list[dict[str, Any]]:
    """One row per explained class: the prediction's metrics, then each method's map metrics and seconds."""
    rows = []
    for c in setup.class_ids:
        row: dict[str, Any] = {"sample": sample_id(ex.index), "image": ex.name, "class": setup.class_names[c]}
        for class_metric in CLASS_METRICS:
            row.update(class_metric(ex.gt, ex.pred, c))
        for method in ex.maps:
            for map_metric in MAP_METRICS:
                values = map_metric(ex.maps[method][c], ex.gt, ex.pred, c)
                row.update({f"{method}_{k}": v for k, v in values.items()})
            row[f"{method}_seconds"] = ex.seconds[method]
        rows.append(row)
    return rows


def _explained_region(ex: Explained, c: int, setup: Setup) -> np.ndarray | None:
    """The pixels whose class-c score was explained, on the photograph (None for region 'all' or empty)."""
    if setup.opts.region == "all":
        return None
    mask = (
        region_masks(
            torch.from_numpy(ex.pred.astype(np.int64))[None],
            torch.from_numpy(ex.gt.astype(np.int64))[None],
            [c],
            setup.opts.region,
            len(setup.class_names),
        )[0, 0]
        .bool()
        .numpy()
    )
    return mask if mask.any() else None


def figure_jobs(ex: Explained, files: SampleFiles, setup: Setup) -> list[FigureJob]:
    """Every figure of one sample, as jobs for the figure writer."""
    out, names, colors, region = setup.layout.out, setup.class_names, setup.colors, setup.opts.region
    jobs = []
    for c in setup.class_ids:
        cname = names[c]
        jobs.append(
            FigureJob(
                "save_error_figure",
                (out / files.figures["tpfpfn"][cname], ex.rgb, ex.gt, ex.pred, c, names, colors),
                {"title": f"{ex.name}: {cname}"},
            )
        )
        contour = _explained_region(ex, c, setup)
        for method in ex.maps:
            label = setup.label(method)
            jobs.append(
                FigureJob(
                    "save_heatmap_figure",
                    (out / files.figures[method][cname], ex.rgb, ex.maps[method][c], cname, label),
                    {
                        "note": ex.notes[method].get(c),
                        "region_contour": contour,
                        "title": f"{ex.name}: {label} of {cname} (region {region})",
                    },
                )
            )
    if files.comparison:
        labels = {m: setup.label(m) for m in ex.maps}
        method_maps = {labels[m]: [ex.maps[m].get(c) for c in range(len(names))] for m in ex.maps}
        notes = {(labels[m], names[c]): text for m in ex.maps for c, text in ex.notes[m].items()}
        jobs.append(
            FigureJob(
                "save_comparison_figure",
                (out / files.comparison, ex.rgb, ex.gt, ex.pred, method_maps, names, colors),
                {
                    "classes_to_show": list(setup.class_ids),
                    "notes": notes,
                    "title": f"{ex.name}: {' vs '.join(labels.values())} (region {region})",
                },
            )
        )
    return jobs


def write_raw(ex: Explained, files: SampleFiles, setup: Setup) -> None:
    """raw_maps/sample{i}.npz: per method a C×H×W stack (zeros where a class was not explained), pred, gt."""
    raw: dict[str, Any] = {
        "classes": np.array(setup.class_names),
        "class_ids": np.array(setup.class_ids),
        "image_name": np.array(ex.name),
        "region": np.array(setup.opts.region),
        "pred": ex.pred.astype(np.uint8),
        "gt": ex.gt.astype(np.uint8),
    }
    for method, per_class in ex.maps.items():
        stack = np.zeros((len(setup.class_names), *ex.pred.shape), dtype=np.float32)
        for c, cam in per_class.items():
            if cam is not None:
                stack[c] = cam
        raw[method] = stack
    raw.update(ex.raw_extra)
    write_npz(setup.layout.path(files.raw), **raw)


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return line if len(line) <= 300 else line[:297] + "..."


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


def explain(setup: Setup, indices: list[int] | None = None) -> ExplainStats:
    """The explain stage over `indices` (default: the run's samples); complete samples are kept with --resume."""
    opts, layout = setup.opts, setup.layout
    indices = setup.indices if indices is None else indices
    try:
        layout.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XAIError(f"cannot create the output folder {layout.out}: {exc.strerror or exc}") from None
    stale = remove_stale_parts(layout.out)
    if stale:
        log.info("removed %d temporary file(s) left by an earlier run that was killed", stale)
    todo = [i for i in indices if not (opts.resume and complete(setup, i))]
    stats = ExplainStats(requested=len(indices), resumed=len(indices) - len(todo))
    if stats.resumed:
        log.info("resume: %d sample(s) already complete, %d to do", stats.resumed, len(todo))
    worker = worker_identity()
    from tqdm.auto import tqdm

    labels = "+".join(setup.label(m) for m in setup.engines)
    bar = tqdm(total=len(todo), desc=f"{labels} {opts.split}", unit="sample", disable=not opts.progress or not todo)
    writer = FigureWriter(opts.workers)
    maps_per_sample = len(setup.class_ids) * len(setup.engines)
    interrupted: KeyboardInterrupt | None = None
    try:
        for item in _loader(setup, todo) if todo else []:
            started = time.time()
            files = layout.sample(item["index"])
            if "error" in item:
                _skip(setup, item["index"], item["name"], item["error"], worker, started, stats)
                bar.update(1)
                continue
            t0 = time.perf_counter()
            try:
                ex = explain_sample(item, setup)
            except (DiskFullError, KeyboardInterrupt):
                raise
            except Exception as exc:
                _skip(
                    setup,
                    item["index"],
                    item["name"],
                    f"the model failed on this sample: {_first_line(exc)}",
                    worker,
                    started,
                    stats,
                )
                bar.update(1)
                continue
            model_seconds = time.perf_counter() - t0
            stats.model_seconds += model_seconds
            write_raw(ex, files, setup)
            record = SampleRecord(
                id=sample_id(ex.index),
                index=ex.index,
                name=ex.name,
                status=DONE,
                run_key=setup.run_key,
                run=setup.run_info,
                rows=summary_rows(ex, setup),
                figures=files.figures,
                comparison=files.comparison,
                raw=files.raw,
                seconds={**ex.seconds, "model": model_seconds},
                started=started,
                worker=worker,
            )
            if ex.evaluation is not None:
                record.metrics, record.curves, record.sanity, record.evaluation_cost = (
                    ex.evaluation.rows,
                    ex.evaluation.curves,
                    ex.evaluation.sanity,
                    ex.evaluation.cost(),
                )
            writer.submit(figure_jobs(ex, files, setup), _finisher(setup, record, files, stats))
            bar.update(1)
            done_maps = (bar.n - len(stats.skipped)) * maps_per_sample
            postfix = {"maps/s": f"{done_maps / max(stats.model_seconds, 1e-9):.2f}"}
            if ex.evaluation is not None:
                stats.evaluation_forwards += sum(ex.evaluation.forwards.values())
                postfix["fwd/s"] = f"{stats.evaluation_forwards / max(stats.model_seconds, 1e-9):.1f}"
            bar.set_postfix(postfix)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the sample in progress is dropped, those explained finish
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
