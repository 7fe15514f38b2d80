"""RISE (Petsiuk et al., BMVC 2018) for segmentation: every class from one sweep of randomly masked images.

N masks M_i: a binary grid of ⌈H/c⌉+1 × ⌈W/c⌉+1 cells (c: cell_size), each cell kept with probability
p, upsampled bilinearly to (⌈H/c⌉+1)·c × (⌈W/c⌉+1)·c and cropped to H×W at a random shift in [0, c)
(seeded: `rise_masks`). The photograph's pixels of each masked copy are x ⊙ M_i (padding unchanged), and

    A_c = Σ_i s_c(x ⊙ M_i) · M_i / (N · p)          s_c: the region score of every method

then ReLU and min-max over the photograph as every method. The same masks serve every image and class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..options import option
from .base import Forward
from .perturbation import PerturbationExplainer, PerturbationOptions
from .registry import register


@dataclass(frozen=True)
class RISEOptions(PerturbationOptions):
    num_masks: int = option(2000, "random masks N (the paper: 4000 for 224×224 classifiers)", key="masks", minimum=1)
    cell_size: int = option(32, "side c of a mask cell, in input pixels", key="cell", minimum=1)
    probability: float = option(0.5, "chance p that a cell is kept", key="p", minimum=1e-6, maximum=1.0)
    seed: int = option(0, "seed of the masks", minimum=0, cli=False)


def rise_grids(n: int, size: tuple[int, int], cell: int, p: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(grids n×1×(⌈H/c⌉+1)×(⌈W/c⌉+1) of 0/1, shifts n×2 in [0, c)): what defines the masks, drawn on the
    CPU from `seed` (the same masks on every device)."""
    h, w = math.ceil(size[0] / cell) + 1, math.ceil(size[1] / cell) + 1
    gen = torch.Generator().manual_seed(int(seed))
    grids = (torch.rand(n, 1, h, w, generator=gen) < p).float()
    shifts = torch.randint(0, cell, (n, 2), generator=gen)
    return grids, shifts


def rise_masks(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int], cell: int) -> torch.Tensor:
    """B×H×W masks in [0, 1]: each grid upsampled bilinearly by `cell` and cropped at its shift."""
    up = F.interpolate(
        grids, size=(grids.shape[-2] * cell, grids.shape[-1] * cell), mode="bilinear", align_corners=False
    )
    H, W = size
    rows = shifts[:, 0].view(-1, 1, 1) + torch.arange(H, device=up.device).view(1, -1, 1)
    cols = shifts[:, 1].view(-1, 1, 1) + torch.arange(W, device=up.device).view(1, 1, -1)
    batch = torch.arange(up.shape[0], device=up.device).view(-1, 1, 1)
    return up[batch, 0, rows, cols]


@register("rise", label="RISE")
class RISE(PerturbationExplainer):
    """Randomised input sampling: the score-weighted mean of random masks."""

    Options = RISEOptions
    options: RISEOptions

    def attribute(self, fwd: Forward) -> torch.Tensor:
        o = self.options
        x, valid = fwd.x, fwd.valid
        N, size = x.shape[0], (int(x.shape[-2]), int(x.shape[-1]))
        grids, shifts = rise_grids(o.num_masks, size, o.cell_size, o.probability, o.seed)
        grids, shifts = grids.to(x.device), shifts.to(x.device)
        total = torch.zeros(N, len(fwd.classes), *size, device=x.device)
        masks: dict[int, torch.Tensor] = {}

        def build(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
            rows = torch.arange(a, b, device=x.device)
            img, k = rows // o.num_masks, rows % o.num_masks
            m = rise_masks(grids[k], shifts[k], size, o.cell_size)
            masks[a] = m
            return torch.where(valid[img].unsqueeze(1), x[img] * m.unsqueeze(1), x[img]), img

        def accumulate(a: int, b: int, scores: torch.Tensor) -> None:
            img = torch.arange(a, b, device=x.device) // o.num_masks
            total.index_add_(0, img, torch.einsum("bc,bhw->bchw", scores, masks.pop(a)))

        self.sweep(fwd, N * o.num_masks, build, after=accumulate)
        fwd.stats.update(masks=o.num_masks)
        return total / (o.num_masks * o.probability)
