"""Occlusion (Zeiler & Fergus, ECCV 2014) for segmentation: every class from one sweep of occluded images.

For patch size p and stride s, the patch positions on each axis of the photograph (rows y0..y1 and
columns x0..x1 of the input that are not padding) are y0, y0 + s, y0 + 2s, ... while the patch fits,
plus a last one flush with the photograph's far edge, so every pixel of the photograph is covered. For
each position P the patch ∩ photograph is set to the fill (padding is never changed):

    Δ_c(P) = s_c(x) − s_c(x_P)                 s_c: the region score (sum over R_c of P_c)
    A_c[i, j] = mean of Δ_c(P) over the patches P that cover (i, j)

then ReLU and min-max over the photograph as every method. Fills: mean (the photograph's mean colour,
padding excluded), zero (0 in normalised space: the dataset's mean colour), black.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import XAIError
from ..errors import option as flag
from ..options import option
from .base import Forward
from .perturbation import PerturbationExplainer, PerturbationOptions, black_pixel, photograph_box
from .registry import register

FILLS = ("mean", "zero", "black")


@dataclass(frozen=True)
class OcclusionOptions(PerturbationOptions):
    patch_size: int = option(32, "side of the square occlusion patch, in input pixels", key="patch", minimum=1)
    stride: int | None = option(None, "step between patch positions (default: patch_size // 2)", minimum=1)
    occlusion_value: str = option(
        "mean",
        "what an occluded patch shows: mean (the photograph's mean colour), zero (the dataset's mean colour), black",
        choices=FILLS,
        key="fill",
    )


def patch_starts(start: int, end: int, patch: int, stride: int) -> list[int]:
    """start, start + stride, ... while the patch fits in [start, end), and a last one flush with end."""
    positions = list(range(start, end - patch + 1, stride))
    if positions[-1] + patch < end:
        positions.append(end - patch)
    return positions


@register("occlusion", label="Occlusion")
class Occlusion(PerturbationExplainer):
    """Occlusion sensitivity: the drop of each class's region score when a patch is hidden."""

    Options = OcclusionOptions
    options: OcclusionOptions

    def check_size(self, height: int, width: int) -> None:
        if self.options.patch_size > min(height, width):
            raise XAIError(
                f"{flag('patch_size')} {self.options.patch_size} is larger than the model's input "
                f"({width}×{height} pixels)"
            )

    def attribute(self, fwd: Forward) -> torch.Tensor:
        p = self.options.patch_size
        s = self.options.stride or max(1, p // 2)
        x, valid = fwd.x, fwd.valid
        jobs, grids = [], []  # (image, y, x) per occluded image; per image its row and column starts
        for n in range(x.shape[0]):
            y0, y1, x0, x1 = photograph_box(valid[n])
            if p > y1 - y0 or p > x1 - x0:
                raise XAIError(
                    f"{flag('patch_size')} {p} is larger than the photograph ({y1 - y0}×{x1 - x0} pixels at the "
                    "model's input size)"
                )
            ys, xs = patch_starts(y0, y1, p, s), patch_starts(x0, x1, p, s)
            grids.append((ys, xs))
            jobs += [(n, yy, xx) for yy in ys for xx in xs]
        table = torch.tensor(jobs, device=x.device)
        fill = self._fills(x, valid)
        rows = torch.arange(x.shape[-2], device=x.device).view(1, 1, -1, 1)
        cols = torch.arange(x.shape[-1], device=x.device).view(1, 1, 1, -1)

        def build(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
            img, yy, xx = table[a:b].unbind(1)
            y, z = yy.view(-1, 1, 1, 1), xx.view(-1, 1, 1, 1)
            patch = (rows >= y) & (rows < y + p) & (cols >= z) & (cols < z + p) & valid[img].unsqueeze(1)
            return torch.where(patch, fill[img], x[img]), img

        delta = self.sweep(fwd, len(jobs), build, drop=True)  # jobs×C': s_c(x) − s_c(x_P)
        fwd.stats.update(patches=len(jobs), patch_size=p, stride=s)
        return self._average(delta, grids, p, x.shape[-2:])

    def _fills(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """N×3×1×1: the occluded patches' colour in normalised space."""
        fill = self.options.occlusion_value
        if fill == "zero":
            return torch.zeros(x.shape[0], x.shape[1], 1, 1, device=x.device)
        if fill == "black":
            return black_pixel(self.options, x.device).unsqueeze(0).expand(x.shape[0], -1, -1, -1)
        v = valid.unsqueeze(1).float()
        return ((x * v).sum((2, 3), keepdim=True) / v.sum((2, 3), keepdim=True).clamp_min(1)).float()

    @staticmethod
    def _average(delta: torch.Tensor, grids: list[Any], p: int, size: torch.Size) -> torch.Tensor:
        """A_c[i, j]: the mean of Δ_c over the patches that cover (i, j). With R_y (rows × H) and R_x
        (columns × W) the patches' row and column indicators, Σ_P Δ_c(P) 1[P ∋ (i,j)] = (R_yᵀ D_c R_x)[i,j]."""
        H, W = int(size[0]), int(size[1])
        out = torch.zeros(len(grids), delta.shape[1], H, W, device=delta.device)
        start = 0
        for n, (ys, xs) in enumerate(grids):
            Ry = _indicator(ys, p, H, delta.device)
            Rx = _indicator(xs, p, W, delta.device)
            D = delta[start : start + len(ys) * len(xs)].T.reshape(-1, len(ys), len(xs))  # C'×rows×cols
            start += len(ys) * len(xs)
            total = torch.einsum("yi,cyx,xj->cij", Ry, D, Rx)
            covered = torch.einsum("yi,xj->ij", Ry, Rx)
            out[n] = torch.where(covered > 0, total / covered.clamp_min(1), torch.zeros_like(total))
        return out


def _indicator(starts: list[int], p: int, size: int, device: torch.device) -> torch.Tensor:
    """len(starts)×size: 1 where the patch starting at starts[k] covers the pixel."""
    index = torch.arange(size, device=device).view(1, -1)
    begin = torch.tensor(starts, device=device).view(-1, 1)
    return ((index >= begin) & (index < begin + p)).float()
