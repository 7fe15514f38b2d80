#!/usr/bin/env python
"""SS-CAM, IS-CAM and Score-CAM against torch-cam 0.5.0's SSCAM, ISCAM and ScoreCAM.

torch-cam is not a dependency: install it into a scratch folder and put that on PYTHONPATH,

    pip install --no-deps --target /tmp/pgc torchcam==0.5.0
    PYTHONPATH=/tmp/pgc .venv/bin/python bench/crosscheck_torchcam.py

Same model (a seeded smp Unet/resnet18 with random weights), inputs and target layer; torch-cam's
target, per image and class c, is a callable on the model's output: Σ_p R_p · softmax(out)_c,p with R
the pixels predicted as c on the unperturbed image, our score="prob", region="pred". torch-cam takes
softmax weights over the channels, so ours run with weights="softmax" (the baseline then cancels:
baseline="none"). Softmax weights of region sums (hundreds) are nearly one-hot, which hides small
differences of the weights, so the target is by default the region's mean probability (our
score_reduction="mean", `--reduction sum` for the sum). Prints, per row, the worst Pearson correlation
and max |difference| of the [0, 1] maps over the (image, class) pairs with a predicted region.

Where the definitions coincide. At `decoder` (the Unet's 16 channels at the input's resolution) there
is no upsampling, so torch-cam's min-max of A_k before upsampling and ours after are the same masks.
SS-CAM: torch-cam draws noise per image and channel from the global generator; the rows "sscam" give
its extractor our noise (δ_i ~ N(0, σ²), one H×W map per copy from `seed`, the same for every channel)
through its own sampling call, so both score the same masked inputs. IS-CAM: torch-cam's code scales
the masks by α_i = Σ_{j≤i} j/N, our integration_path="cumulative"; the row "iscam linear" is our
default α_i = i/N, expected to differ. "sscam own noise" lets torch-cam draw its own independent noise
(N = 35, σ = 2 by default: a Monte-Carlo comparison, expected to differ). The rows at `--layer2`
(encoder.layer2, H/8) show what the order of min-max and upsampling changes. A constant channel is
skipped here (w = 0) and scored by torch-cam (its mask is 0, or the noise alone); the script counts them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class GivenNoise:
    """Stands in for torch-cam's noise distribution: the i-th sample() is our δ_i, expanded to the
    requested N×K×H×W (the same map for every image and channel, as ours)."""

    def __init__(self, noise: torch.Tensor):
        self.noise, self.calls = noise, 0

    def sample(self, size: torch.Size) -> torch.Tensor:
        d = self.noise[self.calls % len(self.noise)]
        self.calls += 1
        return d.expand(size).clone()


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.ravel(), b.ravel()
    if a.std() == 0 or b.std() == 0:
        return (1.0 if a.std() == b.std() == 0 else 0.0), float(np.abs(a - b).max())
    return float(np.corrcoef(a, b)[0, 1]), float(np.abs(a - b).max())


def theirs_map(extractor: Any, model: torch.nn.Module, x: torch.Tensor, c: int, region: torch.Tensor) -> np.ndarray:
    """torch-cam's normalised map for one image and class (target: Σ_R P_c, or its mean when `region` is
    divided by its size), upsampled to the input as ours (bilinear)."""
    with extractor as ext:
        with torch.no_grad():
            model(x)
        cam = ext(targets=[lambda out, c=c, m=region: (torch.softmax(out, 0)[c] * m).sum()])[0]
    cam = torch.nn.functional.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam[0, 0].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--size", type=int, default=64, help="side of the square inputs")
    p.add_argument("--samples", type=int, default=35, help="SS-CAM's N (torch-cam's default 35)")
    p.add_argument("--stdev", type=float, default=2.0, help="SS-CAM's σ (torch-cam's default 2.0)")
    p.add_argument("--steps", type=int, default=10, help="IS-CAM's N (torch-cam's default 10)")
    p.add_argument("--reduction", choices=("mean", "sum"), default="mean", help="the target: region mean or sum")
    p.add_argument("--layer2", default="encoder.layer2", help="a layer below the input's resolution")
    args = p.parse_args()
    try:
        import torchcam.methods as tc
    except ImportError:
        sys.exit("torch-cam is not importable: see this script's docstring")
    from importlib.metadata import version

    import segmentation_models_pytorch as smp

    from xai.methods import get_method
    from xai.methods.sscam import noise_maps

    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=5).eval()
    x = torch.randn(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred = model(x).argmax(1)
    size = (args.size, args.size)
    shape = (3, args.size, args.size)
    print(
        f"torch-cam {version('torchcam')} vs xai; Unet/resnet18 random weights, {args.images} images "
        f"{args.size}x{args.size}, 5 classes, region {args.reduction}; SS-CAM N={args.samples} σ={args.stdev}, "
        f"IS-CAM N={args.steps}"
    )
    common = {"weights": "softmax", "baseline": "none", "precision": "fp32", "memory_format": "contiguous"}
    common["score_reduction"] = args.reduction
    rows: list[tuple[str, str, dict[str, Any], Any]] = []
    for layer in ("decoder", args.layer2):
        rows += [
            ("scorecam", layer, {}, lambda L: tc.ScoreCAM(model, L, batch_size=64, input_shape=shape)),
            ("sscam", layer, {"noise_samples": args.samples, "noise_stdev": args.stdev, "seed": 3}, "given"),
            (
                "iscam",
                layer,
                {"integration_steps": args.steps, "integration_path": "cumulative"},
                lambda L: tc.ISCAM(model, L, batch_size=64, num_samples=args.steps, input_shape=shape),
            ),
        ]
    rows.append(
        (
            "iscam linear",
            "decoder",
            {"integration_steps": args.steps},
            lambda L: tc.ISCAM(model, L, batch_size=64, num_samples=args.steps, input_shape=shape),
        )
    )
    rows.append(("sscam own noise", "decoder", {"noise_samples": args.samples, "noise_stdev": args.stdev}, "own"))
    print(f"{'method':<18}{'layer':<16}{'min Pearson':>12}{'max |diff|':>12}{'pairs':>7}{'constant ch.':>14}")
    for label, layer, options, make in rows:
        name = label.split()[0]
        cam = get_method(name).cls(model, target_layer=layer, batch_size=64, **common, **options)
        ours = cam(x).numpy()
        assert cam.last is not None
        constant = sum(cam.last.stats["channels"] - k for k in cam.last.stats["kept_channels"])
        worst_r, worst_d, n = 1.0, 0.0, 0
        for i in range(args.images):
            for c in range(5):
                region = (pred[i] == c).float()
                if region.sum() == 0:
                    continue
                if args.reduction == "mean":
                    region = region / region.sum()
                if make in ("given", "own"):
                    ext = tc.SSCAM(
                        model, layer, batch_size=64, num_samples=args.samples, std=args.stdev, input_shape=shape
                    )
                    if make == "given":
                        ext._distrib = GivenNoise(noise_maps(args.samples, size, args.stdev, options["seed"]))
                    else:
                        torch.manual_seed(100 + i)
                else:
                    ext = make(layer)
                r, d = _agreement(ours[i, c], theirs_map(ext, model, x[i : i + 1], c, region))
                worst_r, worst_d, n = min(worst_r, r), max(worst_d, d), n + 1
        print(f"{label:<18}{layer:<16}{worst_r:>12.6f}{worst_d:>12.2e}{n:>7}{constant:>14}")


if __name__ == "__main__":
    main()
