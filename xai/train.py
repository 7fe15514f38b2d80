"""Train an smp segmentation model on a dataset in the users' layout (the demo model, or a quick baseline).

    python -m xai.train --config demo [--out best_model_FPN.safetensors] [--data_root DIR]
                        [--epochs E] [--seed S] [--whole_model_pickle PATH]

Architecture, encoder, classes and img_size come from the config; training settings from its `train:`
mapping (see TRAIN_DEFAULTS). Images go through xai.data.SegmentationDataset, i.e. exactly the
resize + zero-pad + encoder-normalisation that explanations use later. The model outputs logits
(activation=None); the loss is cross-entropy + smp's soft Dice loss (multiclass). Augmentation: horizontal flip (of the
un-padded region) and, when `crop` is set, random crops of the preprocessed image, most of them
centred on a foreground pixel of a randomly chosen class (that balances the small classes and makes
an epoch cheaper); validation always sees whole images.

Validation IoU is per class, accumulated over the whole val split (sum of intersections / sum of
unions, not a mean of per-image IoUs), at the model's input resolution on the un-padded region of
each image: padding pixels never count. The checkpoint with the best mean IoU over
the foreground classes (all classes but the first) is written with xai.checkpoint.save_checkpoint,
and `<checkpoint stem>.metrics.json` beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import Config, load_config
from .errors import XAIError, exit_with_one_line, option
from .labels import IGNORE  # ignore-labelled pixels (in training and evaluation) and padding (evaluation)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
DEFAULT_CONFIG = "demo"  # packaged (xai/configs/demo.yaml)
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,  # passes over the train split
    "batch_size": 8,
    "lr": 2e-3,  # peak learning rate of AdamW with a one-cycle schedule
    "weight_decay": 1e-4,
    "data_root": None,  # default: the config's data_root
    "seed": 0,
    "threads": 2,  # torch CPU threads
    "crop": None,  # [width, height] of random training crops (multiples of 32), or null: whole images
    "fg_crop_prob": 0.8,  # share of crops centred on a foreground pixel
    "eval_from": 1,  # first epoch evaluated on val (earlier ones are only trained; saves time)
}


def _train_settings(cfg: Config, source: str) -> dict[str, Any]:
    raw = cfg.train or {}
    if not isinstance(raw, dict):
        raise XAIError(f"{source}: 'train' must be a mapping of settings ({', '.join(TRAIN_DEFAULTS)})")
    unknown = sorted(set(raw) - set(TRAIN_DEFAULTS))
    if unknown:
        raise XAIError(f"{source}: unknown train setting(s) {', '.join(unknown)}; known: {', '.join(TRAIN_DEFAULTS)}")
    out = {**TRAIN_DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    try:
        out["epochs"], out["batch_size"] = int(out["epochs"]), int(out["batch_size"])
        out["seed"], out["threads"] = int(out["seed"]), int(out["threads"])
        out["eval_from"] = int(out["eval_from"])
        out["lr"], out["weight_decay"] = float(out["lr"]), float(out["weight_decay"])
        out["fg_crop_prob"] = float(out["fg_crop_prob"])
        if out["crop"] is not None:
            out["crop"] = tuple(int(v) for v in out["crop"])
    except (TypeError, ValueError):
        raise XAIError(f"{source}: train settings must be numbers (crop: two integers or null)") from None
    if out["epochs"] < 1 or out["batch_size"] < 1 or out["threads"] < 1 or out["lr"] <= 0:
        raise XAIError(f"{source}: train epochs, batch_size and threads must be >= 1 and lr > 0")
    crop = out["crop"]
    if crop is not None and (len(crop) != 2 or min(crop) < 32 or any(v % 32 for v in crop)):
        raise XAIError(f"{source}: train crop must be [width, height], multiples of 32 (got {list(crop)})")
    return out


def _resolve_root(path: str | Path) -> Path:
    """A relative data root is relative to the working directory."""
    return Path(path)


def _preload(ds) -> list[tuple]:
    """(image 3xHxW float, mask HxW int64, (top, bottom, left, right) of the photograph) for every sample
    of a split, read once."""
    items = []
    for i in range(len(ds)):
        it = ds[i]
        items.append((it["image"], it["mask"], it["letterbox"].box))
    return items


def _stack(tensors: Sequence, fill) -> torch.Tensor:
    """Stack CxHxW (or HxW) tensors padding bottom/right to the largest; `fill` per channel or scalar."""
    import torch

    hmax = max(t.shape[-2] for t in tensors)
    wmax = max(t.shape[-1] for t in tensors)
    out = torch.empty((len(tensors), *tensors[0].shape[:-2], hmax, wmax), dtype=tensors[0].dtype)
    out[:] = fill
    for i, t in enumerate(tensors):
        out[i, ..., : t.shape[-2], : t.shape[-1]] = t
    return out


class _Augment:
    """Horizontal flip of the un-padded region, then (optionally) a crop biased to the foreground."""

    def __init__(self, rng: np.random.Generator, crop: tuple[int, int] | None, fg_prob: float, num_classes: int):
        self.rng, self.crop, self.fg_prob, self.num_classes = rng, crop, fg_prob, num_classes

    def __call__(self, image, mask, box):
        top, bottom, left, right = box
        if self.rng.random() < 0.5:
            image, mask = image.clone(), mask.clone()
            image[:, top:bottom, left:right] = image[:, top:bottom, left:right].flip(-1)
            mask[top:bottom, left:right] = mask[top:bottom, left:right].flip(-1)
        if self.crop is None:
            return image, mask
        H, W = mask.shape
        cw, ch = min(self.crop[0], W), min(self.crop[1], H)
        cy = cx = None
        if self.rng.random() < self.fg_prob:
            present = [c for c in range(1, self.num_classes) if bool((mask == c).any())]
            if present:
                c = present[int(self.rng.integers(len(present)))]
                ys, xs = (mask == c).nonzero(as_tuple=True)
                j = int(self.rng.integers(len(ys)))
                cy, cx = int(ys[j]), int(xs[j])
        if cy is None:
            cy, cx = int(self.rng.integers(top, bottom)), int(self.rng.integers(left, right))
        # Centre the crop near (cx, cy) with a random offset, inside the padded image.
        y0 = int(np.clip(cy - ch // 2 + self.rng.integers(-ch // 4, ch // 4 + 1), 0, H - ch))
        x0 = int(np.clip(cx - cw // 2 + self.rng.integers(-cw // 4, cw // 4 + 1), 0, W - cw))
        return image[:, y0 : y0 + ch, x0 : x0 + cw], mask[y0 : y0 + ch, x0 : x0 + cw]


def evaluate(model, items: list[tuple], num_classes: int, batch_size: int, pad_fill, device: Any = "cpu") -> np.ndarray:
    """Per-class IoU over the split (NaN for a class absent from both prediction and truth): summed
    intersections over summed unions (smp.metrics.get_stats per image, summed), not a mean of per-image IoUs.

    Pixels: the un-padded region of each image at the model's input resolution (padding is ignored).
    """
    import segmentation_models_pytorch as smp
    import torch

    tp = torch.zeros(num_classes, dtype=torch.long)
    fp = torch.zeros_like(tp)
    fn = torch.zeros_like(tp)
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(items), batch_size):
            chunk = items[b : b + batch_size]
            x = _stack([it[0] for it in chunk], pad_fill)
            pred = model(x.to(device, non_blocking=True)).argmax(1).cpu()
            target = torch.full_like(pred, IGNORE)
            for k, (_, gt, (top, bottom, left, right)) in enumerate(chunk):
                target[k, top:bottom, left:right] = gt[top:bottom, left:right]
            stats = smp.metrics.get_stats(pred, target, mode="multiclass", num_classes=num_classes, ignore_index=IGNORE)
            tp, fp, fn = tp + stats[0].sum(0), fp + stats[1].sum(0), fn + stats[2].sum(0)
    union = (tp + fp + fn).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp.numpy() / np.maximum(union, 1), np.nan)


def _mean_fg(iou: np.ndarray) -> float:
    fg = iou[1:]
    fg = fg[~np.isnan(fg)]
    return float(fg.mean()) if fg.size else 0.0


@dataclass
class _Run:
    """What one training run resolved before its first step."""

    cfg: Config
    source: str
    st: dict[str, Any]
    root: Path
    out: Path
    train_items: list[tuple]
    val_items: list[tuple]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad_fill: Any  # a black pixel, normalised (3×1×1)
    device: Any  # where the model trains (torch.device)

    @property
    def batch_size(self) -> int:
        return min(self.st["batch_size"], len(self.train_items))

    @property
    def steps_per_epoch(self) -> int:
        """Full batches only (BatchNorm needs more than one value per channel); the shuffle differs per
        epoch, so every image is used."""
        return len(self.train_items) // self.batch_size


def _prepare(
    config: str | Path | None,
    out: str | Path | None,
    data_root: str | Path | None,
    epochs: int | None,
    seed: int | None,
    device: str | None = None,
) -> _Run:
    source = str(config if config is not None else DEFAULT_CONFIG)
    cfg = load_config(source)
    st = _train_settings(cfg, source)
    if epochs is not None:
        if epochs < 1:
            raise XAIError(f"{option('epochs')} must be at least 1 (got {epochs})")
        st["epochs"] = int(epochs)
    if seed is not None:
        st["seed"] = int(seed)
    root = _resolve_root(data_root or st["data_root"] or cfg.data_root)
    if not root.is_dir():
        raise XAIError(f"data root not found: {root} (make one with: python -m xai.synth --out {root})")
    target = Path(out) if out is not None else Path(f"best_model_{cfg.arch}.safetensors")
    if target.is_dir():
        raise XAIError(f"{option('out')} {target} is a folder; give a checkpoint file name")
    import torch

    from .data import SegmentationDataset, encoder_normalization
    from .modeling import pick_device

    dev = pick_device(device)

    mean, std = encoder_normalization(cfg.encoder)
    common: dict[str, Any] = dict(
        palette=cfg.class_colors(),
        img_size=cfg.img_size,
        mean=mean,
        std=std,
        split_file=cfg.split_file,
        preprocessing=cfg.preprocess(),
        ignore_index=cfg.ignore_index,
    )
    train_items = _preload(SegmentationDataset(root, "train", keep_original=False, **common))
    if len(train_items) < 2:
        raise XAIError(f"the train split of {root} has {len(train_items)} image; training needs at least 2")
    val_items = _preload(SegmentationDataset(root, "val", keep_original=False, **common))
    pad_fill = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(3, 1, 1)
    return _Run(cfg, source, st, root, target, train_items, val_items, mean, std, pad_fill, dev)


def _epoch(run: _Run, model: Any, step: Any, augment: _Augment, order: np.ndarray, bar: Any) -> float:
    """One pass over the train split in shuffled full batches; returns the smoothed loss."""
    bs, running = run.batch_size, 0.0
    for k in bar:
        idx = order[k * bs : (k + 1) * bs]
        pairs = [augment(*run.train_items[int(i)]) for i in idx]
        x, y = _stack([p[0] for p in pairs], run.pad_fill), _stack([p[1] for p in pairs], 0)
        loss = step(x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True))
        running = loss if k == 0 else 0.9 * running + 0.1 * loss
        bar.set_postfix(loss=f"{running:.3f}")
    bar.close()
    return running


def _optimiser_step(run: _Run, model: Any) -> Any:
    """step(x, y) -> loss: cross-entropy + smp's Dice loss, AdamW with a one-cycle schedule."""
    import segmentation_models_pytorch as smp
    import torch

    st = run.st
    opt = torch.optim.AdamW(model.parameters(), lr=st["lr"], weight_decay=st["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=st["lr"], total_steps=st["epochs"] * run.steps_per_epoch, pct_start=0.15
    )
    ce = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)  # ignore-labelled pixels teach nothing
    dice = smp.losses.DiceLoss(mode="multiclass", from_logits=True, smooth=1.0, ignore_index=IGNORE)

    def step(x: Any, y: Any) -> float:
        logits = model(x)
        loss = ce(logits, y) + dice(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return float(loss.item())

    return step


def _rounded(classes: Sequence[str], iou: np.ndarray) -> dict[str, float | None]:
    return {c: (None if np.isnan(v) else round(float(v), 5)) for c, v in zip(classes, iou, strict=True)}


def _save(run: _Run, model: Any, epoch: int, iou: np.ndarray, mfg: float) -> None:
    from .checkpoint import save_checkpoint

    cfg = run.cfg
    save_checkpoint(
        run.out,
        model,
        arch=cfg.arch,
        encoder=cfg.encoder,
        classes=list(cfg.classes),
        img_size=cfg.img_size,
        activation=None,
        mean=run.mean,
        std=run.std,
        model_kwargs={"encoder_name": cfg.encoder, "in_channels": 3, "classes": cfg.num_classes, "activation": None},
        extra={
            "epoch": epoch,
            "val_iou": _rounded(cfg.classes, iou),
            "mean_foreground_iou": round(mfg, 5),
            "train_seed": run.st["seed"],
            "preprocessing": dataclasses.asdict(cfg.preprocess()),
        },
    )


def _metrics(run: _Run, best: dict[str, Any], history: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    cfg = run.cfg
    return {
        "val_iou": _rounded(cfg.classes, best["iou"]),
        "mean_foreground_iou": round(best["mean"], 5),
        "best_epoch": best["epoch"],
        "epochs": run.st["epochs"],
        "seconds": round(seconds, 2),
        "iou_pixels": "un-padded region at the model input resolution, summed over the val split",
        "config": run.source,
        "data_root": str(run.root),
        "train_images": len(run.train_items),
        "val_images": len(run.val_items),
        "img_size": list(cfg.img_size),
        "arch": cfg.arch,
        "encoder": cfg.encoder,
        "device": str(run.device),
        "train": {k: (list(v) if isinstance(v, tuple) else v) for k, v in run.st.items()},
        "history": history,
    }


def train(
    config: str | Path | None = None,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    whole_model_pickle: str | Path | None = None,
    progress: bool = True,
    device: str | None = None,
) -> dict:
    """Train, keep the best epoch by mean foreground val IoU; return the metrics written to JSON.
    device: cpu, cuda or cuda:N (default: cuda when available)."""
    t_start = time.perf_counter()  # "seconds" in the metrics: this call's wall time (imports included)
    run = _prepare(config, out, data_root, epochs, seed, device)
    model, step, augment, rng = _start(run)
    best, history = _epochs(run, model, step, augment, rng, progress, t_start)
    return _finish(run, model, best, history, t_start, whole_model_pickle)


def _start(run: _Run) -> tuple[Any, Any, _Augment, np.random.Generator]:
    """The run's model, optimiser step, augmentation and shuffling generator, seeded by its settings (torch's
    threads and seed set)."""
    import torch

    from .modeling import build_model

    st, cfg = run.st, run.cfg
    torch.set_num_threads(st["threads"])
    torch.manual_seed(st["seed"])
    rng = np.random.default_rng(st["seed"])
    model = build_model(cfg.arch, cfg.encoder, cfg.num_classes, activation=None).to(run.device)
    step = _optimiser_step(run, model)
    augment = _Augment(rng, st["crop"], st["fg_crop_prob"], cfg.num_classes)
    return model, step, augment, rng


def _epochs(
    run: _Run, model: Any, step: Any, augment: _Augment, rng: np.random.Generator, progress: bool, t_start: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every epoch: trained (a bar with progress), then evaluated from eval_from on (the last always).
    Returns the best epoch ({mean, epoch, iou, state}; saved as it came) and the history of every epoch."""
    from tqdm import tqdm

    st = run.st
    best: dict[str, Any] = {"mean": -1.0, "epoch": 0, "iou": None}
    history: list[dict[str, Any]] = []
    for epoch in range(1, st["epochs"] + 1):
        model.train()
        bar = tqdm(
            range(run.steps_per_epoch),
            desc=f"epoch {epoch}/{st['epochs']}",
            leave=False,
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        loss = _epoch(run, model, step, augment, rng.permutation(len(run.train_items)), bar)
        elapsed = time.perf_counter() - t_start
        if epoch < min(st["eval_from"], st["epochs"]):
            history.append({"epoch": epoch, "loss": round(loss, 5), "mean_foreground_iou": None})
            if progress:
                log.info("epoch %d/%d loss %.3f (not evaluated) [%.0fs]", epoch, st["epochs"], loss, elapsed)
            continue
        best = _evaluate_epoch(run, model, epoch, loss, best, history, progress, t_start)
    return best, history


def _evaluate_epoch(
    run: _Run,
    model: Any,
    epoch: int,
    loss: float,
    best: dict[str, Any],
    history: list[dict[str, Any]],
    progress: bool,
    t_start: float,
) -> dict[str, Any]:
    """Val IoU after an epoch, added to the history (and logged with progress); returns the new best, saved
    when its mean foreground IoU beats `best`'s, else `best`."""
    st, cfg = run.st, run.cfg
    iou = evaluate(model, run.val_items, cfg.num_classes, max(run.batch_size, 8), run.pad_fill, run.device)
    mfg = _mean_fg(iou)
    history.append({"epoch": epoch, "loss": round(loss, 5), "mean_foreground_iou": round(mfg, 5)})
    improved = mfg > best["mean"]
    if improved:
        best = {"mean": mfg, "epoch": epoch, "iou": iou}
        best["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _save(run, model, epoch, iou, mfg)
    if progress:
        per_class = " ".join(f"{c} {v:.3f}" for c, v in zip(cfg.classes[1:], iou[1:], strict=True))
        saved = " (best, saved)" if improved else ""
        log.info("epoch %d/%d loss %.3f val IoU %s | mean fg %.3f%s [%.0fs]", epoch, st["epochs"], loss,
                 per_class, mfg, saved, time.perf_counter() - t_start)  # fmt: skip
    return best


def _finish(
    run: _Run,
    model: Any,
    best: dict[str, Any],
    history: list[dict[str, Any]],
    t_start: float,
    whole_model_pickle: str | Path | None,
) -> dict:
    """Writes the metrics JSON beside the checkpoint (and the best epoch's whole model, pickled, when asked);
    returns the metrics with the paths of both files."""
    import torch

    from .io import atomic_path, write_json

    metrics = _metrics(run, best, history, time.perf_counter() - t_start)
    metrics_path = run.out.with_name(f"{run.out.stem}.metrics.json")
    write_json(metrics_path, metrics)
    if whole_model_pickle is not None:
        model.load_state_dict(best["state"])
        model.cpu().eval()  # loadable without map_location on a machine without the GPU
        with atomic_path(whole_model_pickle) as tmp:
            torch.save(model, tmp)
    return {**metrics, "checkpoint": str(run.out), "metrics_path": str(metrics_path)}


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import add_version_flag

    ap = argparse.ArgumentParser(prog="python -m xai.train", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="a packaged config name (demo, phenocyte) or a YAML file with a train: mapping (default: demo)",
    )
    ap.add_argument("--out", default=None, help="checkpoint to write (default: best_model_<arch>.safetensors)")
    ap.add_argument("--data_root", default=None, help="dataset folder (default: train.data_root, else data_root)")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--seed", type=int, default=None, help="override train.seed")
    ap.add_argument(
        "--whole_model_pickle",
        default=None,
        metavar="PATH",
        help="also write torch.save(model, PATH), the whole pickled model",
    )
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    add_version_flag(ap)
    args = ap.parse_args(argv)
    # On a shared CPU, spinning OpenMP threads slow everyone (this run too) down: yield instead.
    # Read when torch starts its thread pool, so only effective before torch is imported (as here).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .cli import configure_logging

    with logging_redirect_tqdm(loggers=[configure_logging()]):
        m = train(
            args.config,
            args.out,
            args.data_root,
            args.epochs,
            args.seed,
            args.whole_model_pickle,
            progress=not args.quiet,
            device=args.device,
        )
    iou = " ".join(f"{c} {v:.3f}" for c, v in m["val_iou"].items() if v is not None)
    print(
        f"wrote {m['checkpoint']} (epoch {m['best_epoch']}/{m['epochs']}, val IoU {iou}; mean foreground "
        f"{m['mean_foreground_iou']:.3f}) and {m['metrics_path']} in {m['seconds']:.0f}s"
    )
    return 0


if __name__ == "__main__":
    exit_with_one_line(main)
