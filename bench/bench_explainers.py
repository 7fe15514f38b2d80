#!/usr/bin/env python
"""Speed of the shared sweeps, as ratios measured in one run (fastest of --rounds interleaved rounds):

    occlusion, one sweep       xai.Occlusion: every class from one sweep of occluded images, batch_size at a time
    occlusion, upstream loop   the researchers' visualize_occlusion.py: one sweep per class, one image per forward,
                               the class's output summed over the whole image
    occlusion, captum          captum.attr.Occlusion: one call per class (perturbations_per_eval = batch_size)
    ablation-cam, head         xai.AblationCAM at `decoder`: the segmentation head alone on cached features
    ablation-cam, full         the same weights with the whole model run per ablated channel (remainder=full)
    score-cam                  xai.ScoreCAM at `decoder`: one masked forward of the whole model per channel

The occlusion variants use the same patches (patch 32, stride 16: the sizes are chosen so that captum's
windows, which stop where the patch no longer fits, are the same); the maps of one sweep and of captum are
compared (max |difference| of the raw class maps).

    .venv/bin/python bench/bench_explainers.py            # FPN/resnet18 at 128x256, random weights
    .venv/bin/python bench/bench_explainers.py --model_path best_model_FPN.safetensors --config demo
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _model_and_image(args):
    import numpy as np
    import torch

    from xai.data import IMAGENET_MEAN, IMAGENET_STD, Letterbox, normalize
    from xai.modeling import build_model
    from xai.synth import render_seedling

    if args.model_path:
        from xai.checkpoint import load_model

        loaded = load_model(args.model_path)
        model, name = loaded.model, f"{Path(args.model_path).name} ({loaded.arch}/{loaded.encoder})"
    else:
        torch.manual_seed(0)
        model, name = build_model("FPN", "resnet18", 5), "FPN/resnet18 (random weights)"
    w, h = args.size
    rgb, _ = render_seedling(np.random.default_rng(3), (w * 2, h * 2))
    box = Letterbox.fit(rgb.shape[:2], (w, h))
    x = normalize(box.apply_image(rgb), IMAGENET_MEAN, IMAGENET_STD)[None]
    return model.eval(), x, name


def upstream_occlusion(model, x, classes: int, patch: int, stride: int):
    """visualize_occlusion.py's OcclusionSensitivity.generate, per class (their loop, in torch)."""
    import torch

    H, W = x.shape[-2:]
    fill = x.mean(dim=(2, 3), keepdim=True)
    ys = list(range(0, H - patch + 1, stride))
    xs = list(range(0, W - patch + 1, stride))
    maps = []
    with torch.no_grad():
        for c in range(classes):
            base = model(x)[0, c].sum().item()
            total, count = torch.zeros(H, W), torch.zeros(H, W)
            for y in ys:
                for z in xs:
                    occluded = x.clone()
                    occluded[:, :, y : y + patch, z : z + patch] = fill
                    total[y : y + patch, z : z + patch] += base - model(occluded)[0, c].sum().item()
                    count[y : y + patch, z : z + patch] += 1
            maps.append(total / count.clamp_min(1))
    return torch.stack(maps)


def captum_occlusion(model, x, classes: int, patch: int, stride: int, batch: int):
    import torch
    from captum.attr import Occlusion

    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    maps = []
    for c in range(classes):
        region = (pred == c).float()

        def score(inp, c=c, region=region):
            return (torch.softmax(model(inp), 1)[:, c] * region).sum((1, 2))

        a = Occlusion(score).attribute(
            x, sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride), baselines=0.0,
            perturbations_per_eval=batch,
        )  # fmt: skip
        maps.append(a[0, 0])
    return torch.stack(maps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_path", default=None)
    p.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("W", "H"))
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch

    import xai
    from xai.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    model, x, name = _model_and_image(args)
    classes, patch, stride, bs = 5, 32, 16, args.batch_size
    runs: dict[str, Callable[[], object]] = {
        "occlusion, one sweep": lambda: xai.Occlusion(
            model, patch_size=patch, stride=stride, occlusion_value="zero", batch_size=bs
        )(x),
        "occlusion, upstream loop": lambda: upstream_occlusion(model, x, classes, patch, stride),
        "occlusion, captum": lambda: captum_occlusion(model, x, classes, patch, stride, bs),
        "ablation-cam, head": lambda: xai.AblationCAM(model, target_layer="decoder", batch_size=bs)(x),
        "ablation-cam, full": lambda: xai.AblationCAM(model, target_layer="decoder", batch_size=bs, remainder="full")(
            x
        ),
        "score-cam": lambda: xai.ScoreCAM(model, target_layer="decoder", batch_size=bs, precision="fp32")(x),
    }
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for label, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[label] = min(best.get(label, float("inf")), time.perf_counter() - t0)
    ours = xai.Occlusion(model, patch_size=patch, stride=stride, occlusion_value="zero", batch_size=bs)
    ours(x)
    theirs = torch.relu(captum_occlusion(model, x, classes, patch, stride, bs))
    difference = float((ours.last.raw[0] - theirs).abs().max())
    print(f"{name}, one {x.shape[-1]}x{x.shape[-2]} input, {classes} classes, batch {bs}, {args.threads} threads")
    print(f"occlusion: patch {patch}, stride {stride}, {ours.last.stats['patches']} patches")
    print(f"{'measurement':<28}{'seconds':>10}")
    for label, seconds in best.items():
        print(f"{label:<28}{seconds:>10.2f}")
    one = best["occlusion, one sweep"]
    print(f"upstream loop / one sweep: {best['occlusion, upstream loop'] / one:.1f}x")
    print(f"captum / one sweep: {best['occlusion, captum'] / one:.1f}x (classes: {classes})")
    print(f"ablation full / head: {best['ablation-cam, full'] / best['ablation-cam, head']:.1f}x")
    print(f"score-cam / ablation head: {best['score-cam'] / best['ablation-cam, head']:.1f}x")
    print(f"max |one sweep − captum| of the raw occlusion maps: {difference:.2e}")


if __name__ == "__main__":
    main()
