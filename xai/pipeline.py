"""The batch pipeline behind both CLIs: load, explain, map back onto the photograph, write.

Per sample i (its position in the split) and class c it writes
    tpfpfn_maps/sample{i}_tpfpfn_{c}.png, scorecam_maps/sample{i}_scorecam_{c}.png,
    gradcam_maps/sample{i}_gradcam_{c}.png, comparison/sample{i}_comparison.png (--compare),
    raw_maps/sample{i}.npz, samples/sample{i}.json (written last: the sample's completion marker),
and at the end summary.csv, summary.json, manifest.json and index.html.
"""
from __future__ import annotations

import csv
import io
import re
import json
import platform
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import __version__
from .checkpoint import load_model
from .config import PROJECT_ROOT, Config, load_config
from .data import SegmentationDataset, encoder_normalization, read_split
from .errors import XAIError
from .io import write_json, write_npz, write_text
from .modeling import pick_device

METHOD_LABELS = {"scorecam": "Score-CAM", "gradcam": "Grad-CAM"}
METHOD_DIRS = {"scorecam": "scorecam_maps", "gradcam": "gradcam_maps"}
ERROR_DIR, RAW_DIR, SAMPLE_DIR, COMPARE_DIR = "tpfpfn_maps", "raw_maps", "samples", "comparison"
IGNORE = 255  # ground-truth value of padding pixels: in no class's region
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class RunOptions:
    """Everything a run needs, from the command line (xai.cli) or from Python."""

    model_path: str
    methods: tuple[str, ...] = ("scorecam",)
    output_dir: str = "scorecam_visualizations"
    num_samples: int = 5
    split: str = "test"
    all: bool = False
    batch_size: int = 32
    max_activation_maps: int | None = None
    encoder: str | None = None
    arch: str | None = None
    img_size: tuple[int, int] | None = None
    config: str | None = None
    data_root: str | None = None
    classes: Sequence[str] | None = None
    target_layer: str | None = None
    device: str | None = None
    precision: str = "auto"
    region: str = "pred"
    score: str = "prob"
    baseline: str = "zero"
    weights: str = "raw"
    channel_selection: str = "variance"
    save_raw: bool = False
    resume: bool = False
    seed: int = 0
    compare: bool = False
    trust_checkpoint: bool = False
    workers: int = 2
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class Setup:
    cfg: Config
    model: torch.nn.Module
    loaded: Any
    device: torch.device
    dataset: SegmentationDataset
    indices: list[int]
    class_ids: list[int]
    class_names: list[str]
    engines: dict[str, Any]
    notes: list[str]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _resolve_data_root(opts: RunOptions, cfg: Config) -> Path:
    if opts.data_root:
        root = Path(opts.data_root)
        if not root.is_dir():
            raise XAIError(f"data root not found: {root}")
        return root
    root = _project_path(cfg.data_root)
    if root.is_dir():
        return root
    fallback = _project_path(cfg.fallback_data_root) if cfg.fallback_data_root else None
    if fallback is not None and fallback.is_dir():
        _say(f"note: {cfg.data_root} not found; using the synthetic demo dataset {fallback}")
        return fallback
    raise XAIError(f"data root not found: {cfg.data_root} (pass --data_root, or run `make demo` for a synthetic one)")


def _project_path(p: str) -> Path:
    path = Path(p)
    if path.is_absolute() or path.exists():
        return path
    return PROJECT_ROOT / path


def prepare(opts: RunOptions) -> Setup:
    """Config, model, data and engines; every problem surfaces here as one XAIError line."""
    if not Path(opts.model_path).exists():
        raise XAIError(f"model file not found: {opts.model_path}")
    cfg = load_config(opts.config)
    device = pick_device(opts.device)
    loaded = load_model(opts.model_path, arch=opts.arch or cfg.arch, encoder=opts.encoder or cfg.encoder,
                        classes=list(cfg.classes), trust_checkpoint=opts.trust_checkpoint)
    notes = list(getattr(loaded, "notes", []) or [])
    if opts.encoder and loaded.kind == "project" and loaded.encoder and opts.encoder != loaded.encoder:
        raise XAIError(f"{opts.model_path} was trained with encoder {loaded.encoder}, but --encoder {opts.encoder} was given")
    class_names = list(loaded.classes) if loaded.classes else list(cfg.classes)
    unsafe = [c for c in class_names if not SAFE_NAME.match(str(c))]
    if unsafe:
        raise XAIError(f"class name(s) {', '.join(map(repr, unsafe))} cannot be used in file names "
                       "(letters, digits, '_', '-', '.' only)")
    img_size = tuple(opts.img_size) if opts.img_size else tuple(loaded.img_size or cfg.img_size)
    if len(img_size) != 2 or not all(isinstance(v, int) and v > 0 for v in img_size):
        raise XAIError(f"image size must be two positive integers (width height), got {list(img_size)}")
    mean, std = (loaded.mean, loaded.std) if loaded.mean and loaded.std else encoder_normalization(loaded.encoder or cfg.encoder)
    model = loaded.model.to(device).eval()

    root = _resolve_data_root(opts, cfg)
    names = read_split(root, opts.split, cfg.split_file)
    dataset = SegmentationDataset(root, opts.split, palette=cfg.class_colors(), img_size=img_size, mean=mean, std=std,
                                  split_file=cfg.split_file, names=names, skip_errors=True)
    if opts.num_samples is not None and opts.num_samples < 1 and not opts.all:
        raise XAIError(f"--num_samples must be at least 1, got {opts.num_samples}")
    indices = list(range(len(names))) if opts.all else list(range(min(opts.num_samples, len(names))))

    if opts.classes:
        unknown = [c for c in opts.classes if c not in class_names]
        if unknown:
            raise XAIError(f"unknown class(es) {', '.join(unknown)}; the model's classes are {', '.join(class_names)}")
        class_ids = [class_names.index(c) for c in opts.classes]
    else:
        class_ids = list(range(len(class_names)))

    target_layer = opts.target_layer or cfg.target_layer
    engines = {}
    for method in opts.methods:
        if method == "scorecam":
            from .scorecam import ScoreCAM

            engines[method] = ScoreCAM(model, target_layer=target_layer, batch_size=opts.batch_size,
                                       max_activation_maps=opts.max_activation_maps, score=opts.score,
                                       region=opts.region, baseline=opts.baseline, weights=opts.weights,
                                       precision=opts.precision, channel_selection=opts.channel_selection,
                                       seed=opts.seed)
        elif method == "gradcam":
            from .gradcam import GradCAM

            engines[method] = GradCAM(model, target_layer=target_layer, score=opts.score, region=opts.region)
        else:
            raise XAIError(f"unknown method '{method}'")
    return Setup(cfg, model, loaded, device, dataset, indices, class_ids, class_names, engines, notes)


def _sample_paths(out: Path, i: int, methods: Sequence[str], class_names: Sequence[str], class_ids: Sequence[int],
                  compare: bool) -> dict[str, Any]:
    sid = f"sample{i}"
    figures: dict[str, dict[str, Path]] = {"tpfpfn": {class_names[c]: out / ERROR_DIR / f"{sid}_tpfpfn_{class_names[c]}.png"
                                                      for c in class_ids}}
    for m in methods:
        figures[m] = {class_names[c]: out / METHOD_DIRS[m] / f"{sid}_{m}_{class_names[c]}.png" for c in class_ids}
    return {
        "figures": figures,
        "comparison": out / COMPARE_DIR / f"{sid}_comparison.png" if compare else None,
        "raw": out / RAW_DIR / f"{sid}.npz",
        "record": out / SAMPLE_DIR / f"{sid}.json",
    }


def _complete(paths: dict[str, Any]) -> bool:
    files = [p for group in paths["figures"].values() for p in group.values()] + [paths["raw"], paths["record"]]
    if paths["comparison"] is not None:
        files.append(paths["comparison"])
    return all(Path(p).is_file() for p in files)


def class_metrics(gt: np.ndarray, pred: np.ndarray, cam: np.ndarray | None, c: int) -> dict[str, Any]:
    """IoU, Dice, TP/FP/FN pixel counts, and the share of the map's energy inside gt and prediction."""
    from .render import error_counts, iou_dice

    counts = error_counts(gt, pred, c)
    iou, dice = iou_dice(counts)
    row: dict[str, Any] = {"iou": iou, "dice": dice, **counts}
    if cam is not None:
        total = float(cam.sum())
        row["energy_in_gt"] = float(cam[gt == c].sum()) / total if total > 0 else None
        row["energy_in_pred"] = float(cam[pred == c].sum()) / total if total > 0 else None
    return row


def explained_region(gt: np.ndarray, pred: np.ndarray, c: int, region: str, num_classes: int) -> np.ndarray | None:
    """The pixels whose class-c score was explained, on the photograph (None for region 'all')."""
    if region == "all":
        return None
    from .targets import region_masks

    mask = region_masks(torch.from_numpy(pred.astype(np.int64))[None], torch.from_numpy(gt.astype(np.int64))[None],
                        [c], region, num_classes)
    return mask[0, 0].bool().numpy()


class Writer:
    """Renders and writes figures on a small thread pool, off the model's critical path.

    At most `2 × workers` samples wait in the queue, so memory stays bounded; busy_seconds is the
    time the pool spent rendering/writing, wait_seconds the time the main loop waited for it."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="xai-writer")
        self.slots = threading.BoundedSemaphore(2 * max(1, workers))
        self.busy_seconds = 0.0
        self.wait_seconds = 0.0
        self._lock = threading.Lock()
        self.futures: list[Future] = []

    def submit(self, fn, *args) -> Future:
        t0 = time.perf_counter()
        self.slots.acquire()
        self.wait_seconds += time.perf_counter() - t0

        def job():
            t = time.perf_counter()
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self.busy_seconds += time.perf_counter() - t
                self.slots.release()

        fut = self.pool.submit(job)
        self.futures.append(fut)
        return fut

    def close(self) -> None:
        t0 = time.perf_counter()
        self.pool.shutdown(wait=True)
        self.wait_seconds += time.perf_counter() - t0


def _write_sample(paths: dict[str, Any], sample: dict[str, Any], setup: Setup, opts: RunOptions) -> dict[str, Any]:
    """Every file of one sample; the JSON record last, so its presence means the sample is complete."""
    from .render import save_comparison_figure, save_error_figure, save_heatmap_figure

    rgb, gt, pred, maps = sample["rgb"], sample["gt"], sample["pred"], sample["maps"]
    names, colors = setup.class_names, setup.cfg.class_colors()
    if len(colors) != len(names):
        colors = (colors + [(128, 128, 128)] * len(names))[:len(names)]
    for c in setup.class_ids:
        cname = names[c]
        save_error_figure(paths["figures"]["tpfpfn"][cname], rgb, gt, pred, c, names, colors,
                          title=f"{sample['name']}: {cname}")
        for m, per_class in maps.items():
            cam, note = per_class[c]
            region = explained_region(gt, pred, c, opts.region, len(names))
            save_heatmap_figure(paths["figures"][m][cname], rgb, cam, cname, METHOD_LABELS[m], note=note,
                                region_contour=region if region is not None and region.any() else None,
                                title=f"{sample['name']}: {METHOD_LABELS[m]} of {cname} (region {opts.region})")
    if paths["comparison"] is not None:
        method_maps = {METHOD_LABELS[m]: [per_class[c][0] if c in per_class else None for c in range(len(names))]
                       for m, per_class in maps.items()}
        notes = {(METHOD_LABELS[m], names[c]): per_class[c][1] for m, per_class in maps.items()
                 for c in per_class if per_class[c][1]}
        save_comparison_figure(paths["comparison"], rgb, gt, pred, method_maps, names, colors,
                               classes_to_show=setup.class_ids, notes=notes,
                               title=f"{sample['name']}: Grad-CAM vs Score-CAM (region {opts.region})")
    raw = {"classes": np.array(names), "class_ids": np.array(setup.class_ids), "image_name": np.array(sample["name"]),
           "region": np.array(opts.region), "pred": pred.astype(np.uint8), "gt": gt.astype(np.uint8)}
    for m, per_class in maps.items():
        stack = np.zeros((len(names), *pred.shape), dtype=np.float32)
        for c, (cam, _) in per_class.items():
            if cam is not None:
                stack[c] = cam
        raw[m] = stack
        if opts.save_raw and m in sample.get("raw_extra", {}):
            raw.update({f"{m}_{k}": v for k, v in sample["raw_extra"][m].items()})
    write_npz(paths["raw"], **raw)
    record = {"id": sample["id"], "index": sample["index"], "name": sample["name"], "rows": sample["rows"],
              "seconds": sample["seconds"], "run_key": run_key(setup)}
    write_json(paths["record"], record)
    return record


def engine_options(setup: Setup) -> dict[str, dict[str, Any]]:
    return {m: {k: v for k, v in vars(e).items() if isinstance(v, (str, int, float, bool, type(None)))}
            for m, e in setup.engines.items()}


def run_key(setup: Setup) -> dict[str, Any]:
    """What a sample's outputs depend on: a resumed run redoes samples written under another key."""
    engines = {m: {k: v for k, v in o.items() if k not in ("batch_size", "progress")}  # results do not depend on them
               for m, o in engine_options(setup).items()}
    return {"checkpoint": setup.loaded.sha256, "engines": engines,
            "classes": [setup.class_names[c] for c in setup.class_ids], "img_size": list(setup.dataset.img_size)}


def _explain_sample(item: dict, setup: Setup, opts: RunOptions) -> dict[str, Any]:
    """Run every engine on one sample and map the results back onto the photograph."""
    box = item["letterbox"]
    x = item["image"].unsqueeze(0).to(setup.device)
    valid = torch.zeros(box.padded_hw, dtype=torch.bool)
    valid[:box.resized_hw[0], :box.resized_hw[1]] = True
    gt_padded = item["mask"].masked_fill(~valid, IGNORE).unsqueeze(0)  # padding belongs to no class
    maps: dict[str, dict[int, tuple[np.ndarray | None, str | None]]] = {}
    raw_extra: dict[str, dict[str, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    pred_padded = None
    for m, engine in setup.engines.items():
        t0 = time.perf_counter()
        result = engine.explain(x, classes=setup.class_ids, gt=gt_padded, valid=valid.unsqueeze(0))
        seconds[m] = time.perf_counter() - t0
        if pred_padded is None:
            pred_padded = result.prediction[0].cpu().numpy().astype(np.uint8)
        per_class = {}
        for j, c in enumerate(result.classes):
            if bool(result.empty[0, j]):
                note = f"class '{setup.class_names[c]}' absent from its region ({result.region}): nothing to explain"
                per_class[c] = (None, note)
            else:
                # scaled to [0, 1] on the photograph itself, after the padding is cropped
                cam = _minmax(box.to_original(result.raw[0, j].cpu().numpy()))
                per_class[c] = (cam, None)
        maps[m] = per_class
        if opts.save_raw:
            raw_extra[m] = {"raw": result.raw[0].cpu().numpy().astype(np.float32),
                            "weights": result.weights[0].cpu().numpy().astype(np.float32)}
    pred = box.to_original(pred_padded, nearest=True)
    gt = item["gt"]
    rows = []
    for c in setup.class_ids:
        row = {"sample": f"sample{item['index']}", "image": item["name"], "class": setup.class_names[c]}
        base = class_metrics(gt, pred, None, c)
        row.update(base)
        for m, per_class in maps.items():
            cam = per_class[c][0]
            extra = class_metrics(gt, pred, cam, c)
            row[f"{m}_energy_in_gt"] = extra.get("energy_in_gt")
            row[f"{m}_energy_in_pred"] = extra.get("energy_in_pred")
        for m, s in seconds.items():
            row[f"{m}_seconds"] = s
        rows.append(row)
    return {"id": f"sample{item['index']}", "index": item["index"], "name": item["name"], "rgb": item["rgb"],
            "gt": gt, "pred": pred, "maps": maps, "raw_extra": raw_extra, "rows": rows, "seconds": seconds}


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(a, dtype=np.float32)


def _identity(item):
    return item


def _loader(dataset: SegmentationDataset, indices: list[int]):
    """Prefetch images in a worker process while the model runs."""
    subset = torch.utils.data.Subset(dataset, indices)
    workers = 1 if len(indices) > 1 else 0
    return torch.utils.data.DataLoader(subset, batch_size=None, shuffle=False, num_workers=workers,
                                       prefetch_factor=2 if workers else None, collate_fn=_identity)


SUMMARY_FIELDS = ["sample", "image", "class", "iou", "dice", "tp", "fp", "fn"]


def _write_summaries(out: Path, records: list[dict], methods: Sequence[str]) -> None:
    rows = [row for rec in records for row in rec["rows"]]
    fields = list(SUMMARY_FIELDS)
    for m in methods:
        fields += [f"{m}_energy_in_gt", f"{m}_energy_in_pred", f"{m}_seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    write_text(out / "summary.csv", buf.getvalue())
    write_json(out / "summary.json", rows)


def _versions() -> dict[str, str]:
    import cv2
    import matplotlib
    import segmentation_models_pytorch as smp

    return {"xai": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "segmentation_models_pytorch": smp.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
            "matplotlib": matplotlib.__version__}


def run(opts: RunOptions) -> dict[str, Any]:
    """Explain the chosen samples of a split and write every output; returns the manifest."""
    t_start = time.perf_counter()
    setup = prepare(opts)
    out = Path(opts.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for note in setup.notes:
        _say(f"note: {note}")
    methods = list(setup.engines)
    compare = opts.compare and len(methods) > 1
    key = json.loads(json.dumps(run_key(setup)))
    todo, records = [], {}
    for i in setup.indices:
        paths = _sample_paths(out, i, methods, setup.class_names, setup.class_ids, compare)
        if opts.resume and _complete(paths):
            try:
                record = json.loads(Path(paths["record"]).read_text())
            except (OSError, ValueError):
                record = None
            if record is not None and record.get("run_key") == key:
                records[i] = record
                continue
        todo.append(i)
    if opts.resume and len(todo) < len(setup.indices):
        _say(f"resume: {len(setup.indices) - len(todo)} sample(s) already complete, {len(todo)} to do")

    skipped: list[dict[str, str]] = []
    writer = Writer(opts.workers)
    model_seconds = 0.0
    maps_per_sample = len(setup.class_ids) * len(methods)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"{'+'.join(METHOD_LABELS[m] for m in methods)} {opts.split}", unit="sample",
               disable=not opts.progress or not todo)
    futures: dict[int, Future] = {}
    try:
        for item in (_loader(setup.dataset, todo) if todo else []):
            if "error" in item:
                skipped.append({"sample": f"sample{item['index']}", "image": item["name"], "error": item["error"]})
                bar.update(1)
                continue
            t0 = time.perf_counter()
            sample = _explain_sample(item, setup, opts)
            model_seconds += time.perf_counter() - t0
            paths = _sample_paths(out, item["index"], methods, setup.class_names, setup.class_ids, compare)
            futures[item["index"]] = writer.submit(_write_sample, paths, sample, setup, opts)
            bar.update(1)
            done = bar.n - len(skipped)
            bar.set_postfix(maps_per_s=f"{done * maps_per_sample / max(model_seconds, 1e-9):.2f}")
    finally:
        writer.close()
        bar.close()
    for i, fut in futures.items():
        records[i] = fut.result()

    ordered = [records[i] for i in setup.indices if i in records]
    _write_summaries(out, ordered, methods)
    gallery_samples = []
    for rec in ordered:
        paths = _sample_paths(out, rec["index"], methods, setup.class_names, setup.class_ids, compare)
        gallery_samples.append({
            "id": rec["id"], "name": rec["name"],
            "figures": {k: {c: p.relative_to(out).as_posix() for c, p in v.items()} for k, v in paths["figures"].items()},
            "comparison": paths["comparison"].relative_to(out).as_posix() if paths["comparison"] else None,
            "metrics": {row["class"]: {"iou": row["iou"], "dice": row["dice"]} for row in rec["rows"]},
        })
    from .gallery import write_gallery

    write_gallery(out, gallery_samples, setup.class_names,
                  title=f"{' vs '.join(METHOD_LABELS[m] for m in methods)}: {Path(opts.model_path).name}, {opts.split} split")
    wall = time.perf_counter() - t_start
    engine_opts = engine_options(setup)
    manifest = {
        "command": opts.command, "versions": _versions(), "config": setup.cfg.to_dict(),
        "checkpoint": {"path": str(opts.model_path), "sha256": setup.loaded.sha256, "kind": setup.loaded.kind,
                       "arch": setup.loaded.arch, "encoder": setup.loaded.encoder},
        "device": str(setup.device), "data_root": str(setup.dataset.root), "split": opts.split,
        "classes": [setup.class_names[c] for c in setup.class_ids], "engines": engine_opts,
        "samples": {"requested": len(setup.indices), "explained": len(futures), "resumed": len(setup.indices) - len(todo),
                    "skipped": skipped},
        "timing": {"wall_seconds": wall, "model_seconds": model_seconds, "writer_busy_seconds": writer.busy_seconds,
                   "waiting_for_writer_seconds": writer.wait_seconds,
                   "writing_share": writer.busy_seconds / wall if wall > 0 else 0.0,
                   "waiting_for_writer_share": writer.wait_seconds / wall if wall > 0 else 0.0},
    }
    write_json(out / "manifest.json", manifest)
    if skipped:
        _say(f"skipped {len(skipped)} sample(s):")
        for s in skipped:
            _say(f"  {s['sample']} ({s['image']}): {s['error']}")
    _say(f"wrote {len(ordered)} sample(s) to {out}/ (index.html, summary.csv, manifest.json)")
    return manifest
