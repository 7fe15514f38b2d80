"""The one normalisation of an explanation map, shared by every method, figure, file and metric.

For a map L (…×H×W, ≥ 0) and the photograph's pixels V (the input without its padding):

    L̂ = (L − min_V L) / (max_V L − min_V L)   on V,   0 outside V        (a map constant on V becomes 0)

so a map in [0, 1] means the same thing in the engine's result, the figures, raw_maps/*.npz and the
evaluation.
"""

from __future__ import annotations

import torch

__all__ = ["minmax"]


def minmax(maps: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Each H×W map of `maps` (…×H×W) scaled to [0, 1] over `valid` (broadcastable to maps, bool; None:
    every pixel), 0 outside it; a map constant on `valid` becomes all zeros (never NaN)."""
    flat = maps.float()
    if valid is None:
        lo = flat.flatten(-2).amin(-1)[..., None, None]
        hi = flat.flatten(-2).amax(-1)[..., None, None]
        inside = None
    else:
        inside = valid.to(flat.device).bool().expand_as(flat)
        big = torch.finfo(flat.dtype).max
        lo = torch.where(inside, flat, big).flatten(-2).amin(-1)[..., None, None]
        hi = torch.where(inside, flat, -big).flatten(-2).amax(-1)[..., None, None]
    span = hi - lo
    scaled = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    if inside is not None:
        scaled = torch.where(inside, scaled, torch.zeros_like(scaled))
    return scaled.clamp_(0, 1)
