"""Localisation of a map L_c (H×W, ≥ 0) against the ground truth GT_c (H×W bool), on the photograph's
pixels V (padding excluded):

    energy pointing game     Σ_{p∈GT_c∩V} L_p / Σ_{p∈V} L_p                       (Score-CAM, Wang et al. 2020)
    pointing game            1 if a pixel where L is maximal over V lies in GT_c, else 0 (with several
                             maximal pixels: a hit if any of them lies in GT_c)
    relevance rank accuracy  K = |GT_c ∩ V|: the share of the K highest pixels of L over V (stable
                             order, ties in raster order) that lie in GT_c   (Arras et al. 2022)

An empty GT_c ∩ V or a map that is 0 on all of V gives NaN with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import XAIError

__all__ = ["LocalisationResult", "energy_pointing_game", "pointing_game", "relevance_rank_accuracy"]

NO_TRUTH = "class absent from the ground truth"
ZERO_MAP = "the map is 0 on every pixel of the photograph"


@dataclass(frozen=True)
class LocalisationResult:
    value: float
    reason: str | None = None


def _prepare(
    cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor] | LocalisationResult:
    """(L over V, GT over V) as flat tensors in raster order, or the NaN result that applies."""
    cam = torch.as_tensor(cam).detach().float().cpu()
    gt = torch.as_tensor(gt).bool().cpu()
    valid = torch.ones_like(gt) if valid is None else torch.as_tensor(valid).bool().cpu()
    if cam.dim() != 2 or cam.shape != gt.shape or cam.shape != valid.shape:
        raise XAIError(
            f"map {tuple(cam.shape)}, ground truth {tuple(gt.shape)} and valid {tuple(valid.shape)} "
            "must be H×W of the same size"
        )
    values, truth = cam[valid], gt[valid]
    if not torch.isfinite(values).all() or bool((values < 0).any()):
        raise XAIError("a map for localisation metrics must be finite and ≥ 0 on the photograph")
    if not bool(truth.any()):
        return LocalisationResult(math.nan, NO_TRUTH)
    if not bool((values > 0).any()):
        return LocalisationResult(math.nan, ZERO_MAP)
    return values, truth


def energy_pointing_game(cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> LocalisationResult:
    """Σ_{GT∩V} L / Σ_V L."""
    prepared = _prepare(cam, gt, valid)
    if isinstance(prepared, LocalisationResult):
        return prepared
    values, truth = prepared
    v = values.double()
    return LocalisationResult(float(v[truth].sum() / v.sum()))


def pointing_game(cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> LocalisationResult:
    """1.0 if any pixel where L is maximal over V lies in GT, else 0.0."""
    prepared = _prepare(cam, gt, valid)
    if isinstance(prepared, LocalisationResult):
        return prepared
    values, truth = prepared
    return LocalisationResult(float(bool(truth[values == values.max()].any())))


def relevance_rank_accuracy(
    cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None
) -> LocalisationResult:
    """|top-K(L over V) ∩ GT| / K with K = |GT ∩ V| (stable descending order)."""
    prepared = _prepare(cam, gt, valid)
    if isinstance(prepared, LocalisationResult):
        return prepared
    values, truth = prepared
    k = int(truth.sum())
    top = torch.argsort(values, descending=True, stable=True)[:k]
    return LocalisationResult(float(truth[top].sum()) / k)
