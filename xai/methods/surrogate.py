"""The surrogate family: a linear model of the region score over superpixels, fitted by captum.

The photograph is cut into superpixels by SLIC (scikit-image; n_segments, compactness, on the RGB of the
photograph's pixels, padding left out). Each perturbed copy keeps a subset of the superpixels and sets
the others to the baseline (0: the dataset's mean colour; padding never changes); the region score s_c
of each copy (regions fixed from the unperturbed prediction) is fitted by captum's surrogate (KernelSHAP:
Shapley kernel weights, a linear regression; LIME: an exponential kernel, a Lasso), and

    A_c[i, j] = the coefficient of the superpixel that holds (i, j)

then the positive part and min-max over the photograph as every method. n_samples copies per image and
class, seeded; the superpixels are returned as extra["superpixels"] and drawn in the figures.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..options import option
from ..runtime import seeded
from ..syncs import to_host
from .attribution import captum_algorithm
from .base import Explainer, Forward
from .perturbation import PerturbationOptions

__all__ = ["SuperpixelSurrogate", "SurrogateOptions", "superpixels"]


@dataclass(frozen=True)
class SurrogateOptions(PerturbationOptions):
    n_samples: int = option(
        200, "perturbed copies per image and class fitted by the surrogate", key="samples", minimum=1
    )
    n_segments: int = option(50, "superpixels SLIC aims for", key="segments", minimum=2)
    compactness: float = option(10.0, "SLIC's balance of colour and space (higher: squarer superpixels)", minimum=1e-6)
    seed: int = option(0, "seed of the perturbations", minimum=0, cli=False)


def superpixels(rgb: np.ndarray, valid: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """H×W int64 labels 0..K−1 of SLIC superpixels of an H×W×3 image in [0, 1] on `valid`; −1 elsewhere."""
    from skimage.segmentation import slic

    kw = {"n_segments": n_segments, "compactness": compactness, "mask": valid, "start_label": 1, "channel_axis": -1}
    labels = slic(rgb, **kw)
    if np.unique(labels[valid]).size < 2:  # pixel-scale noise: connectivity merged everything; cut without it
        labels = slic(rgb, enforce_connectivity=False, **kw)
    return np.where(valid, labels.astype(np.int64) - 1, -1)


class SuperpixelSurrogate(Explainer):
    """A captum surrogate (`captum_class`) fitted on superpixels, one target class at a time."""

    family = "surrogate"
    batch_unit = "perturbed images"
    Options = SurrogateOptions
    options: SurrogateOptions

    captum_class: ClassVar[str]  # the name of the captum.attr surrogate

    def _segments(self, x: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
        """H×W superpixel labels of one image, on the host (SLIC runs there); −1 on padding."""
        mean = np.asarray(self.options.input_mean, dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.options.input_std, dtype=np.float32).reshape(3, 1, 1)
        rgb = (to_host(x.detach().float()) * std + mean).clip(0, 1).transpose(1, 2, 0)
        return superpixels(rgb, to_host(valid), self.options.n_segments, self.options.compactness)

    def _fit(
        self,
        image: torch.Tensor,
        baseline: torch.Tensor,
        features: torch.Tensor,
        score: Any,
        j: int,
        calls: list[int],
        counted: int,
        size: int,
    ) -> torch.Tensor:
        """captum's surrogate of class j's score on one image, `size` perturbed copies per forward."""
        calls[0] = counted  # a retry after out-of-memory counts its images once
        with seeded(self.options.seed + j, image.device):
            return captum_algorithm(self.captum_class, score).attribute(
                image,
                baselines=baseline,
                feature_mask=features.view(1, 1, *features.shape),
                n_samples=self.options.n_samples,
                perturbations_per_eval=size,
            )

    def attribute(self, fwd: Forward) -> torch.Tensor:
        x = fwd.x.detach()
        out = torch.zeros(x.shape[0], len(fwd.classes), *x.shape[-2:], device=x.device)
        labels = [self._segments(x[n], fwd.valid[n]) for n in range(x.shape[0])]
        segments = torch.from_numpy(np.stack(labels)).to(x.device)
        calls = [0]
        for n in range(x.shape[0]):
            # the padding: one more feature, at its own value
            features = torch.from_numpy(np.where(labels[n] < 0, labels[n].max() + 1, labels[n])).to(x.device)
            baseline = torch.where(fwd.valid[n], torch.zeros_like(x[n]), x[n]).unsqueeze(0)
            for j in range(len(fwd.classes)):
                regions = None if fwd.regions is None else fwd.regions[n]
                score = self.class_score(regions, fwd.classes, j, calls, image=n)
                fit = functools.partial(self._fit, x[n : n + 1], baseline, features, score, j, calls, calls[0])
                a = self.batches.run(fit)
                out[n, j] = a.detach()[0].mean(0)
        fwd.extra["superpixels"] = segments
        fwd.stats.update(forwards=calls[0] + 1, superpixels=[int(s.max()) + 1 for s in labels])
        return out
