#!/usr/bin/env python
"""Our CAM methods against pytorch-grad-cam's implementations of the same definitions.

pytorch-grad-cam is not a dependency: install it into a scratch folder and put that on PYTHONPATH,

    pip install --no-deps --target /tmp/pgc grad-cam ttach && pip install --target /tmp/pgc scipy scikit-learn
    PYTHONPATH=/tmp/pgc .venv/bin/python bench/crosscheck_pytorch_grad_cam.py

Same model (a seeded FPN/resnet18 with random weights), inputs, target layer and target: the class
probability summed over the pixels predicted as that class (pytorch-grad-cam's
SemanticSegmentationTarget on a softmax wrapper = our score="prob", region="pred"). Score-CAM is
compared with our weights="softmax", baseline="none", pytorch-grad-cam's choices. Prints, per method,
the worst Pearson correlation and max |difference| of the [0,1] maps over images and classes.

One difference is not a choice of options: pytorch-grad-cam upsamples Score-CAM's masks with
align_corners=True (nn.UpsamplingBilinear2d); we use align_corners=False everywhere, as the authors'
code and torch-cam do. Softmax weights of region sums (hundreds) are nearly one-hot, so that small
difference can change the winning channel. The row "scorecam, their Up" repeats the comparison with
our masks upsampled their way, which isolates it.

Contrast (xai.contrast), Grad-CAM at the same layer, per image and predicted class c over R_c = pred == c:
"gradcam contrast": our contrast=k (k = the next class id) against their GradCAM with the difference
target Σ_R (P_c − P_k); "gradcam auto": our contrast="auto" against their GradCAM with the target
Σ_R (P_c − Σ_k w_k P_k), w from the definition (tests/explainer_reference.py), which checks our
weights and score through their machinery; "finercam": our contrast="auto" (score_reduction="mean")
against their FinerCAM (alpha 1, comparison categories 1, 2, 3, target_idx c) on a classifier whose
outputs are the mean probabilities q_k over R_c: the same comparison classes, but their weights are
softmax(q) and differentiated, ours q_k / Σ q and constants, so this row is expected to differ.

Eigen-Grad-CAM differs by a choice: pytorch-grad-cam keeps the sign numpy's SVD happens to return for
the first principal component of G ⊙ A, so its map is the complement of the object for some classes; we
take the sign that correlates with Σ_k (G ⊙ A)_k, as our Eigen-CAM does with Σ_k A_k. The row
"eigengradcam, our sign" repeats the comparison with that sign given to pytorch-grad-cam's projection.
Seg-Eigen-CAM's sign rule (largest magnitude positive) is the paper's and theirs; KPCA-CAM's is
scikit-learn's (svd_flip: the largest magnitude positive), which we follow. With `--layer encoder.layer1
--size 256 256` (4,096 cells) KPCA-CAM takes LOBPCG here and ARPACK there: max |diff| about 5e-4, the two
iterative solvers' tolerance. ShapleyCAM, Grad-CAM element-wise and FEM follow their definitions exactly.
`--methods NAME ...` runs only those rows.

The Sobel reference (xai.metrics.references.sobel_map, `--methods sobel`): ours on the normalised input with the
photograph letterboxed in padding, cropped to the photograph, against their sobel_cam on the photograph's uint8
RGB, min-max scaled, on synthetic seedling photographs (xai.synth). Theirs rounds the grey levels to uint8 and
saturates |dx| and |dy| at 255 (cv2.convertScaleAbs) before 0.5·|dx| + 0.5·|dy|; ours does neither. The row
"sobel, theirs unclipped" repeats the comparison with their cv2 pipeline without the saturation, which
isolates it.

The smoothings (xai.methods.smoothing; `--smoothing_only` runs only these rows), Grad-CAM and HiResCAM at
the same layer and target: "eigen_smooth" is ours against theirs with eigen_smooth=True, whose sign of the
principal component is numpy's; "..., our sign" gives their projection our sign (correlating with
Σ_k w_k A_k). "gradcam aug_smooth" is ours against theirs with aug_smooth=True: their segmentation target
keeps its mask for the flipped views, ours flips the region with the image, so this row is expected to
differ; "aug, target flipped" runs their augmentation loop (forward_augmentation_smoothing) with the mask
flipped with each view, our definition through their machinery; "aug, region all" is the target they agree
on (every pixel: a region that is its own mirror image), our region="all" against their aug_smooth=True.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PYRAMID = ("decoder.p5", "decoder.p4", "decoder.p3", "decoder.p2")
PAIRS = {
    "gradcam": "GradCAM",
    "gradcampp": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
    "eigengradcam": "EigenGradCAM",
    "gradcam_elementwise": "GradCAMElementWise",
    "segeigencam": "SegEigenCAM",
    "kpcacam": "KPCA_CAM",
    "fem": "FEM",
    "shapleycam": "ShapleyCAM",
}
# methods over several layers or none: label -> (ours, our options, theirs' construction from
# (pytorch_grad_cam, the softmax-wrapped model, the model's modules by name), patch or None)
MULTI_LAYER: dict[str, tuple[str, dict[str, Any], Callable[..., Any], str | None]] = {
    "refinecam": (
        "refinecam",
        {"refine_layers": PYRAMID},
        lambda pgc, wrapped, modules: pgc.RefineCAM(wrapped, [modules[n] for n in PYRAMID], base_method=pgc.GradCAM),
        None,
    ),
    "refinecam, gradcampp": (
        "refinecam",
        {"refine_layers": PYRAMID, "refine_base": "gradcampp"},
        lambda pgc, wrapped, modules: pgc.RefineCAM(wrapped, [modules[n] for n in PYRAMID]),
        None,
    ),
    "refinecam, gradcampp α": (
        "refinecam",
        {"refine_layers": PYRAMID, "refine_base": "gradcampp"},
        lambda pgc, wrapped, modules: pgc.RefineCAM(wrapped, [modules[n] for n in PYRAMID]),
        "their_alpha",
    ),
    "fullgrad": ("fullgrad", {}, lambda pgc, wrapped, modules: pgc.FullGrad(wrapped, []), None),
}
# rows that repeat a comparison with one difference removed: label -> (ours, theirs, patch)
ISOLATING = {
    "scorecam, their Up": ("scorecam", "ScoreCAM", "their_up"),
    "eigengradcam, our sign": ("eigengradcam", "EigenGradCAM", "our_sign"),
}


def _their_up() -> None:
    """Our Score-CAM masks upsampled as pytorch-grad-cam's (align_corners=True)."""
    import torch.nn.functional as F

    import xai.methods.scorecam as sc

    sc.upsample = lambda t, size: F.interpolate(t, size=size, mode="bilinear", align_corners=True)


def _signed(project):
    """get_2d_projection with our sign: each image's projection correlates with Σ_k of its input."""

    def signed(batch: np.ndarray) -> np.ndarray:
        p = project(batch)
        total = batch.sum(axis=1)
        for i in range(len(p)):
            a, b = p[i] - p[i].mean(), total[i] - total[i].mean()
            if (a * b).sum() < 0:
                p[i] = -p[i]
        return p

    return signed


def _our_sign() -> None:
    """pytorch-grad-cam's EigenGradCAM with our sign: the projection that correlates with Σ_k (G ⊙ A)_k."""
    import pytorch_grad_cam.eigen_grad_cam as egc

    egc.get_2d_projection = _signed(egc.get_2d_projection)


def _their_alpha() -> None:
    """Our Grad-CAM++ with pytorch-grad-cam's α: g² / (2g² + Σ_ab A · g³ + 1e-6) where g ≠ 0."""
    import xai.methods.gradcam_plusplus as gpp

    def weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        g2 = grads**2
        alpha = g2 / (2 * g2 + acts.sum(dim=(2, 3))[:, :, None, None, None] * g2 * grads + 1e-6)
        return (torch.relu(grads) * torch.where(grads != 0, alpha, 0.0)).sum(dim=(2, 3))

    gpp.GradCAMPlusPlus.gradient_weights = weights  # type: ignore[method-assign]


PATCHES = {"their_up": _their_up, "our_sign": _our_sign, "their_alpha": _their_alpha}


class Softmax(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", default="encoder.layer3")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--size", type=int, nargs=2, default=[64, 128], metavar=("W", "H"))
    p.add_argument("--contrast_only", action="store_true", help="only the contrast rows")
    p.add_argument("--smoothing_only", action="store_true", help="only the eigen_smooth and aug_smooth rows")
    names = sorted({*PAIRS, *(ours for ours, *_ in MULTI_LAYER.values()), "sobel"})
    p.add_argument("--methods", nargs="+", choices=names, help="only these methods' rows (default: all)")
    args = p.parse_args()
    try:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
    except ImportError:
        sys.exit("pytorch-grad-cam is not importable: see this script's docstring")
    import segmentation_models_pytorch as smp

    from xai.methods import get_method

    torch.manual_seed(0)
    model = smp.FPN("resnet18", encoder_weights=None, classes=5).eval()
    wrapped = Softmax(model).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.images, 3, args.size[1], args.size[0], generator=g)
    with torch.no_grad():
        pred = model(x).argmax(1)
    layer = dict(model.named_modules())[args.layer]
    from importlib.metadata import version

    print(
        f"pytorch-grad-cam (grad-cam {version('grad-cam')}) vs xai; FPN/resnet18 random weights, "
        f"{args.images} images {args.size[0]}x{args.size[1]}, layer {args.layer}, 5 classes"
    )
    print(f"{'method':<24}{'min Pearson':>12}{'max |diff|':>12}{'pairs':>7}")
    rows: list[tuple[str, str, str, str | None]] = [(ours, theirs, ours, None) for ours, theirs in PAIRS.items()]
    rows += [(ours, label, label, patch) for label, (ours, _, _, patch) in MULTI_LAYER.items()]
    rows += [(ours, theirs, label, patch) for label, (ours, theirs, patch) in ISOLATING.items()]
    only = set(args.methods or []) or None
    rows = [] if args.contrast_only or args.smoothing_only else rows
    for ours, theirs, label, patch in rows:
        if only is not None and ours not in only:
            continue
        if patch is not None:
            PATCHES[patch]()
        kw = (
            {"weights": "softmax", "baseline": "none", "precision": "fp32", "batch_size": 64}
            if ours == "scorecam"
            else {}
        )
        if theirs in MULTI_LAYER:  # one image at a time, as theirs (module docstring: RefineCAM)
            _, options, construct, _ = MULTI_LAYER[theirs]
            cam = get_method(ours).cls(model, **options)
            other = construct(pgc, wrapped, dict(model.named_modules()))
            our_maps = np.concatenate([cam(x[i : i + 1]).numpy() for i in range(args.images)])
        else:
            cam = get_method(ours).cls(model, target_layer=args.layer, **kw)
            other = getattr(pgc, theirs)(model=wrapped, target_layers=[layer])
            our_maps = cam(x).numpy()
        if ours == "scorecam":
            other.batch_size = 64
        worst_r, worst_d, n = 1.0, 0.0, 0
        for i in range(args.images):
            for c in range(5):
                mask = (pred[i] == c).float().numpy()
                if mask.sum() == 0:
                    continue
                ref = other(input_tensor=x[i : i + 1], targets=[SemanticSegmentationTarget(c, mask)])[0]
                a, b = our_maps[i, c].ravel(), ref.ravel()
                if a.std() == 0 or b.std() == 0:
                    r = 1.0 if a.std() == b.std() == 0 else 0.0
                else:
                    r = float(np.corrcoef(a, b)[0, 1])
                worst_r, worst_d, n = min(worst_r, r), max(worst_d, float(np.abs(a - b).max())), n + 1
        print(f"{label:<24}{worst_r:>12.6f}{worst_d:>12.2e}{n:>7}")
    if only is None and not args.smoothing_only:
        contrast_rows(pgc, model, wrapped, x, pred, args.layer)
    if "sobel" in (only or ()) or (only is None and not (args.contrast_only or args.smoothing_only)):
        sobel_rows(args.images)
    if only is None and not args.contrast_only:
        smoothing_rows(pgc, model, wrapped, x, pred, args.layer)


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.ravel(), b.ravel()
    if a.std() == 0 or b.std() == 0:
        return (1.0 if a.std() == b.std() == 0 else 0.0), float(np.abs(a - b).max())
    return float(np.corrcoef(a, b)[0, 1]), float(np.abs(a - b).max())


class RegionClassifier(torch.nn.Module):
    """x -> 1×C: the mean probability of every class over one region (a classifier for FinerCAM)."""

    def __init__(self, model: torch.nn.Module, mask: torch.Tensor):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(self.model(x), 1) * self.mask).sum((2, 3)) / self.mask.sum()


def contrast_rows(pgc, model, wrapped, x, pred, layer_name: str) -> None:
    """The rows "gradcam contrast", "gradcam auto" and "finercam" (module docstring)."""
    from pytorch_grad_cam.finer_cam import FinerCAM

    from tests.explainer_reference import contrast_subtracted_reference
    from xai.methods import get_method

    layer = dict(model.named_modules())[layer_name]
    gradcam = get_method("gradcam").cls
    rows: dict[str, list[tuple[float, float]]] = {"gradcam contrast": [], "gradcam auto": [], "finercam": []}
    theirs_gc = pgc.GradCAM(model=wrapped, target_layers=[layer])
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        with torch.no_grad():
            probs = torch.softmax(model(xi), 1)[0]
        for c in range(5):
            mask = (pred[i] == c).float()
            if mask.sum() == 0:
                continue
            k = (c + 1) % 5
            ours = gradcam(model, target_layer=layer_name, contrast=k).explain(xi, classes=[c]).maps[0, 0].numpy()
            ref = theirs_gc(input_tensor=xi, targets=[lambda o, c=c, k=k, m=mask: ((o[c] - o[k]) * m).sum()])[0]
            rows["gradcam contrast"].append(_agreement(ours, ref))
            sub = contrast_subtracted_reference(probs, mask, c, "auto")
            ours = gradcam(model, target_layer=layer_name, contrast="auto").explain(xi, classes=[c]).maps[0, 0].numpy()

            def weighted(o, c=c, m=mask, sub=sub):
                return ((o[c] - sum(w * o[k] for k, w in sub.items())) * m).sum()

            rows["gradcam auto"].append(_agreement(ours, theirs_gc(input_tensor=xi, targets=[weighted])[0]))
            mean = gradcam(model, target_layer=layer_name, contrast="auto", score_reduction="mean")
            ours = mean.explain(xi, classes=[c]).maps[0, 0].numpy()
            finer = FinerCAM(RegionClassifier(model, mask).eval(), [layer])
            rows["finercam"].append(_agreement(ours, finer(xi, targets=None, target_idx=c, alpha=1)[0]))
    for label, pairs in rows.items():
        r = min(p[0] for p in pairs)
        d = max(p[1] for p in pairs)
        print(f"{label:<24}{r:>12.6f}{d:>12.2e}{len(pairs):>7}")


def sobel_rows(images: int) -> None:
    """The rows "sobel" and "sobel, theirs unclipped" (module docstring)."""
    import cv2
    from pytorch_grad_cam.sobel_cam import sobel_cam

    from xai.data import IMAGENET_MEAN, IMAGENET_STD, normalize
    from xai.metrics.references import sobel_map
    from xai.synth import render_seedling

    def scaled(m: np.ndarray) -> np.ndarray:
        m = m.astype(np.float64)
        return (m - m.min()) / (m.max() - m.min())

    def unsaturated(rgb: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        dx, dy = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
        return 0.5 * np.abs(dx) + 0.5 * np.abs(dy)

    rows: dict[str, list[tuple[float, float]]] = {"sobel": [], "sobel, theirs unclipped": []}
    for i in range(max(images, 1)):
        rgb, _ = render_seedling(np.random.default_rng(i), (120, 240))
        x = torch.zeros(3, 256, 160)  # the photograph letterboxed at (8, 20) in padding of the mean colour
        x[:, 8:248, 20:140] = normalize(rgb, IMAGENET_MEAN, IMAGENET_STD)
        valid = torch.zeros(256, 160, dtype=torch.bool)
        valid[8:248, 20:140] = True
        ours = sobel_map(x, IMAGENET_MEAN, IMAGENET_STD, valid)[8:248, 20:140].numpy()
        rows["sobel"].append(_agreement(ours, scaled(sobel_cam(rgb))))
        rows["sobel, theirs unclipped"].append(_agreement(ours, scaled(unsaturated(rgb))))
    for label, pairs in rows.items():
        print(f"{label:<24}{min(p[0] for p in pairs):>12.6f}{max(p[1] for p in pairs):>12.2e}{len(pairs):>7}")


def _minmax(a: np.ndarray) -> np.ndarray:
    return (a - a.min()) / (a.max() - a.min()) if a.max() > a.min() else np.zeros_like(a)


def _their_aug_flipped(cam, xi: torch.Tensor, c: int, mask: np.ndarray) -> np.ndarray:
    """Their forward_augmentation_smoothing with the target's mask flipped with each view (ttach: a flip is
    its own inverse, Multiply leaves masks as they are)."""
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    maps = []
    for t in cam.tta_transforms:
        seen = t.deaugment_mask(torch.from_numpy(mask)[None, None])[0, 0].numpy()
        out = cam.forward(t.augment_image(xi), [SemanticSegmentationTarget(c, seen)])
        maps.append(t.deaugment_mask(torch.from_numpy(out[:, None]))[:, 0].numpy())
    return np.mean(np.float32(maps), axis=0)


def smoothing_rows(pgc, model, wrapped, x, pred, layer_name: str) -> None:
    """The eigen_smooth and aug_smooth rows (module docstring)."""
    import pytorch_grad_cam.base_cam as base_cam
    import pytorch_grad_cam.hirescam as hirescam
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    from xai.methods import get_method

    layer = dict(model.named_modules())[layer_name]
    theirs = {"gradcam": pgc.GradCAM(model=wrapped, target_layers=[layer])}
    theirs["hirescam"] = _quiet(pgc.HiResCAM(model=wrapped, target_layers=[layer]))

    def ours(method: str, **kw) -> np.ndarray:
        """One image per call, as theirs: plain Grad-CAM of one flipped view of a batch of 3 differed from
        that of the image alone by 6e-3 here (presumably a kink of the gradient that float sums move)."""
        cam = get_method(method).cls(model, target_layer=layer_name, **kw)
        return np.concatenate([cam(x[i : i + 1]).numpy() for i in range(x.shape[0])])

    eigen = {m: ours(m, eigen_smooth=True) for m in theirs}
    aug, aug_all = ours("gradcam", aug_smooth=True), ours("gradcam", aug_smooth=True, region="all")
    rows: dict[str, list[tuple[float, float]]] = {}

    def compare(label: str, our_maps: np.ndarray, call) -> None:
        for i in range(x.shape[0]):
            for c in range(5):
                mask = (pred[i] == c).float().numpy()
                if mask.sum() > 0:
                    rows.setdefault(label, []).append(_agreement(our_maps[i, c], call(x[i : i + 1], c, mask)))

    def target(c, mask):
        return [SemanticSegmentationTarget(c, mask)]

    for m, cam in theirs.items():
        compare(
            f"{m} eigen_smooth", eigen[m], lambda xi, c, mask, cam=cam: cam(xi, target(c, mask), eigen_smooth=True)[0]
        )
    gc = theirs["gradcam"]
    # their mean of the views' [0,1] maps is not scaled again (its max can be below 1); ours is: min-max theirs
    compare("gradcam aug_smooth", aug, lambda xi, c, mask: _minmax(gc(xi, target(c, mask), aug_smooth=True)[0]))
    compare("aug, target flipped", aug, lambda xi, c, mask: _minmax(_their_aug_flipped(gc, xi, c, mask)[0]))
    every = np.ones(tuple(x.shape[-2:]), np.float32)
    compare("aug, region all", aug_all, lambda xi, c, mask: _minmax(gc(xi, target(c, every), aug_smooth=True)[0]))
    base_cam.get_2d_projection = _signed(base_cam.get_2d_projection)
    hirescam.get_2d_projection = _signed(hirescam.get_2d_projection)
    for m, cam in theirs.items():
        compare(
            f"{m} eigen, our sign",
            eigen[m],
            lambda xi, c, mask, cam=cam: cam(xi, target(c, mask), eigen_smooth=True)[0],
        )
    for label, pairs in rows.items():
        r = min(p[0] for p in pairs)
        d = max(p[1] for p in pairs)
        print(f"{label:<24}{r:>12.6f}{d:>12.2e}{len(pairs):>7}")


def _quiet(call):
    """call with its prints (their HiResCAM warns on every smoothed call) left out."""

    def run(*args, **kwargs):
        with contextlib.redirect_stdout(io.StringIO()):
            return call(*args, **kwargs)

    return run


if __name__ == "__main__":
    main()
