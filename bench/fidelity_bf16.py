#!/usr/bin/env python
"""Fidelity of reduced precision: Pearson correlation, per class, of Score-CAM maps at bf16 (or fp16, or TF32
on a GPU that has it) against IEEE fp32 on the demo model's test images (bar: >= 0.99 for every class).

    python bench/fidelity_bf16.py --model_path best_model_FPN.pth --data_root data/demo --n 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xai import ScoreCAM
from xai.checkpoint import load_model
from xai.config import load_config
from xai.data import SegmentationDataset


def pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """None when both maps are constant (zero: nothing to compare); 0 when only one is."""
    a, b = a.flatten().double(), b.flatten().double()
    if a.std() == 0 and b.std() == 0:
        return None
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", default="best_model_FPN.pth")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--data_root", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "tf32"])
    p.add_argument("--max_activation_maps", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    cfg = load_config(args.config)
    loaded = load_model(args.model_path, classes=list(cfg.classes))
    model = loaded.model.to(args.device)
    ds = SegmentationDataset(
        args.data_root or cfg.data_root,
        args.split,
        palette=cfg.class_colors(),
        img_size=tuple(loaded.img_size or cfg.img_size),
        mean=loaded.mean or (0.485, 0.456, 0.406),
        std=loaded.std or (0.229, 0.224, 0.225),
    )
    names = list(loaded.classes or cfg.classes)
    worst: dict[str, float | None] = {c: None for c in names}
    print(f"model {args.model_path} ({loaded.arch}/{loaded.encoder}), {args.precision} vs fp32, device {args.device}")
    for i in range(min(args.n, len(ds))):
        x = ds[i]["image"].unsqueeze(0).to(args.device)
        maps, secs = {}, {}
        for prec in ("fp32", args.precision):
            cam = ScoreCAM(
                model,
                target_layer=cfg.target_layer,
                batch_size=args.batch_size,
                max_activation_maps=args.max_activation_maps,
                precision=prec,
            )
            t0 = time.perf_counter()
            maps[prec] = cam(x)[0].cpu()
            secs[prec] = time.perf_counter() - t0
        rs = [pearson(maps["fp32"][c], maps[args.precision][c]) for c in range(len(names))]
        for c, r in zip(names, rs, strict=True):
            if r is not None:
                worst[c] = r if worst[c] is None else min(worst[c], r)
        print(
            f"{ds.names[i]}: "
            + ", ".join(
                f"{c} {r:.5f}" if r is not None else f"{c} (zero in both)" for c, r in zip(names, rs, strict=True)
            )
            + f"  [fp32 {secs['fp32']:.1f}s, {args.precision} {secs[args.precision]:.1f}s]"
        )
    print(
        "worst per class: "
        + ", ".join(f"{c} {r:.5f}" if r is not None else f"{c} (zero in both)" for c, r in worst.items())
    )


if __name__ == "__main__":
    main()
