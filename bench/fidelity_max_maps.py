#!/usr/bin/env python
"""Fidelity of Faster Score-CAM: maps with --max_activation_maps N against all channels.

The researchers' manual promises "minimal quality loss" at N = 100-200. On FPN/se_resnext50_32x4d (random, seeded
weights) at encoder.layer4 (2048 channels), or on a trained checkpoint (--model_path), per image and
class: Pearson correlation of the [0,1] map with N channels (variance, energy or random selection)
against the map with all channels, and the seconds each took. Inputs are synthetic seedlings.

    .venv/bin/python bench/fidelity_max_maps.py --images 3 --size 512 256
    .venv/bin/python bench/fidelity_max_maps.py --model_path best_model_FPN.safetensors --weights raw centred

With several --weights, each weighting reuses the masked forwards of the first (the sweep depends only on
the kept channels and the baseline), so seconds are those of the first weighting.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pearson(a: torch.Tensor, b: torch.Tensor) -> float | None:
    a, b = a.flatten().double(), b.flatten().double()
    if a.std() == 0 or b.std() == 0:
        return None if a.std() == b.std() == 0 else 0.0
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", default=None, help="a trained checkpoint (default: random weights)")
    p.add_argument("--encoder", default="se_resnext50_32x4d")
    p.add_argument("--layer", default="encoder.layer4")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--first", type=int, default=0, help="seed of the first synthetic image (to split a long run)")
    p.add_argument(
        "--size", type=int, nargs=2, default=None, metavar=("W", "H"), help="default: the model's, or 512 256"
    )
    p.add_argument("--maps", type=int, nargs="+", default=[100, 200])
    p.add_argument("--selections", nargs="+", default=["variance", "energy", "random"])
    p.add_argument("--weights", nargs="+", default=["raw"], help="Score-CAM weightings (raw, softmax, centred)")
    p.add_argument("--baseline", default="zero")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    from xai import ScoreCAM, load_model
    from xai.data import Letterbox, normalize
    from xai.modeling import build_model
    from xai.runtime import tune_cpu_allocator
    from xai.synth import render_seedling

    tune_cpu_allocator()
    torch.manual_seed(0)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    size: tuple[int, ...] = tuple(args.size or (512, 256))
    if args.model_path:
        loaded = load_model(args.model_path)
        model, name = loaded.model.to(args.device).eval(), f"{args.model_path} ({loaded.arch}/{loaded.encoder})"
        mean, std = loaded.mean or mean, loaded.std or std
        size = tuple(args.size or loaded.img_size or size)
    else:
        model, name = build_model("FPN", args.encoder, 5).to(args.device).eval(), f"FPN/{args.encoder} (random weights)"
    w, h = size
    print(
        f"{name}, {args.layer}, {args.images} synthetic seedlings at {w}x{h}, "
        f"device {args.device}, weights {args.weights}, baseline {args.baseline}"
    )
    sweeps: dict[str, torch.Tensor] = {}

    class SharedSweepScoreCAM(ScoreCAM):
        """The engine, with each image's sweep of one variant (w per kept channel) computed once, by the
        first weighting (which is timed), and reused by the others."""

        variant = ""

        def _sweep(self, fwd, acts, selected, count, baseline):
            if self.variant not in sweeps:
                sweeps[self.variant] = super()._sweep(fwd, acts, selected, count, baseline)
            return sweeps[self.variant].clone()

    results: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for i in range(args.first, args.first + args.images):
        rgb, _ = render_seedling(np.random.default_rng(i))
        box = Letterbox.fit(rgb.shape[:2], (w, h))
        x = normalize(box.apply_image(rgb), mean, std)[None].to(args.device)
        sweeps.clear()
        maps = {}
        for weighting in args.weights:
            for label, n, sel in [("all", None, "variance")] + [
                (f"{n} {s}", n, s) for n in args.maps for s in args.selections
            ]:
                cam = SharedSweepScoreCAM(
                    model,
                    target_layer=args.layer,
                    batch_size=args.batch_size,
                    max_activation_maps=n,
                    channel_selection=sel,
                    weights=weighting,
                    baseline=args.baseline,
                    precision="fp32",
                )
                cam.variant = label
                t0 = time.perf_counter()
                maps[weighting, label] = cam(x)[0].cpu()
                if weighting == args.weights[0]:
                    seconds.setdefault(label, []).append(time.perf_counter() - t0)
            for label in seconds:
                if label == "all":
                    continue
                for c in range(maps[weighting, "all"].shape[0]):
                    r = pearson(maps[weighting, "all"][c], maps[weighting, label][c])
                    if r is not None:
                        results.setdefault(f"{weighting}: {label}", []).append(r)
        print(f"image {i}: " + ", ".join(f"{k} {v[-1]:.0f}s" for k, v in seconds.items()), flush=True)
    print(f"{'weights: maps':<22}{'min r':>8}{'median r':>10}{'mean r':>8}{'n':>4}{'s/image':>9}")
    print(f"{'all':<22}{'':>8}{'':>10}{'':>8}{'':>4}{np.mean(seconds['all']):>9.1f}")
    for label, rs in results.items():
        print(
            f"{label:<22}{min(rs):>8.4f}{np.median(rs):>10.4f}{np.mean(rs):>8.4f}{len(rs):>4}"
            f"{np.mean(seconds[label.split(': ', 1)[1]]):>9.1f}"
        )


if __name__ == "__main__":
    main()
