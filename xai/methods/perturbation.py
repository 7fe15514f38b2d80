"""The perturbation family: explain by scoring perturbed copies of the input, every class from one sweep.

A method builds perturbed inputs x' chunk by chunk and gets, for each, the region score s_c(f(x')) of
every explained class with the regions R_c fixed from the unperturbed prediction (xai.targets):

    sweep(count, build) -> count×C' scores,   build(a, b) -> (inputs of rows a..b, their image's index)

The chunks hold batch_size perturbed images (halved on out-of-memory: xai.batching) and nothing in
the sweep waits for the device. Padding is never perturbed: a method changes the photograph's pixels V
only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import BatchOptions
from ..data import IMAGENET_MEAN, IMAGENET_STD
from ..options import option
from ..syncs import to_host
from .base import Explainer, ExplainerOptions, Forward

__all__ = ["PerturbationExplainer", "PerturbationOptions", "black_pixel", "photograph_box"]


@dataclass(frozen=True)
class PerturbationOptions(BatchOptions, ExplainerOptions):
    input_mean: tuple[float, ...] = option(IMAGENET_MEAN, "the inputs' normalisation: mean of each channel", cli=False)
    input_std: tuple[float, ...] = option(IMAGENET_STD, "the inputs' normalisation: std of each channel", cli=False)


def black_pixel(options: PerturbationOptions, device: torch.device) -> torch.Tensor:
    """3×1×1: the normalised value of a black pixel, (0 − mean) / std."""
    mean = torch.tensor(options.input_mean, device=device).view(-1, 1, 1)
    std = torch.tensor(options.input_std, device=device).view(-1, 1, 1)
    return -mean / std


def photograph_box(valid: torch.Tensor) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the rows and columns [y0, y1) × [x0, x1) that hold the photograph's pixels."""
    occupied = to_host(torch.cat([valid.any(dim=1), valid.any(dim=0)]))  # one transfer: rows, then columns
    rows, cols = np.flatnonzero(occupied[: valid.shape[0]]), np.flatnonzero(occupied[valid.shape[0] :])
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class PerturbationExplainer(Explainer):
    """Gradient-free methods that score perturbed inputs (occlusion, RISE, Ablation-CAM's remainder)."""

    family = "perturbation"
    Options = PerturbationOptions
    batch_unit = "perturbed images"

    def sweep(
        self,
        fwd: Forward,
        count: int,
        build: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
        after: Callable[[int, int, torch.Tensor], None] | None = None,
        drop: bool = False,
    ) -> torch.Tensor:
        """count×C' region scores of the inputs build(a, b) returns (rows a..b, with their image index);
        drop: instead the drop of the score from the unperturbed input's, s_c(x) − s_c(x'), summed pixel
        by pixel as Σ_R (P(x) − P(x')) (exact to float32 rounding of P where s_c − s_c(x') is small);
        after(a, b, scores) runs once per chunk that fitted (an accumulation over the chunk's inputs)."""
        out = torch.zeros(count, len(fwd.classes), device=fwd.x.device)

        def chunk(a: int, b: int) -> None:
            inputs, image = build(a, b)
            _, P = self.forward_scores(inputs, batched=True)
            if drop and fwd.P is not None and fwd.regions is not None:
                P = fwd.P[image].float() - P.float()
            scores = self.region_scores(P.float(), fwd.regions, fwd.classes, image)
            if drop and (fwd.P is None or fwd.regions is None):
                scores = fwd.scores.detach()[image] - scores
            if after is not None:
                after(a, b, scores)
            out[a:b] = scores

        self.batches.for_each(count, chunk, self.sweep_bar(count))
        fwd.stats["forwards"] = fwd.stats.get("forwards", 1) + count
        return out
