"""How an explanation changes when the question or the input changes a little: Random Logit and the Local
Lipschitz estimate, as Quantus (Hedström et al. 2023) defines them, for maps L ≥ 0 (H×W) on the
photograph's pixels V (the maps are 0 off V).

    random logit (Sixt et al. 2020): SSIM(L_c, L_c') of the map of class c and the map of another class c'
        drawn at random (seeded) among the evaluated classes, both explaining the same pixels R_c (the
        score of c' over c's region); SSIM as skimage's structural_similarity with a 7×7 window and
        data_range = max − min over both maps. Lower is better (a map that does not change with the class
        explains the image, not the class); None when both maps are constant and equal.
        Quantus compares the maps flattened to one row (a window of 7 pixels along the raster order);
        this compares them as images (7×7 windows).
    local lipschitz estimate (Alvarez-Melis & Jaakkola 2018): max_i ‖L(x + ε_i) − L(x)‖₂ / ‖ε_i‖₂ over
        n seeded noisy inputs, ε_i ~ N(0, σ²) on V (0 on padding), norms over V. Lower is better.
"""

from __future__ import annotations

import torch

__all__ = ["local_lipschitz", "ssim"]


def ssim(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """skimage's SSIM of two maps of the same shape (7-pixel windows along each axis, data_range = the range
    of both maps together); None when that range is 0."""
    from skimage.metrics import structural_similarity

    x = torch.as_tensor(a).double().cpu().numpy()
    y = torch.as_tensor(b).double().cpu().numpy()
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    if hi == lo:
        return None
    return float(structural_similarity(x, y, data_range=float(hi - lo)))


def local_lipschitz(
    noisy: list[torch.Tensor], noises: list[torch.Tensor], original: torch.Tensor, valid: torch.Tensor
) -> float | None:
    """max_i ‖L_i − L‖ / ‖ε_i‖ over V.

    Args:
        noisy: the maps L_i = L(x + ε_i) (H×W each).
        noises: the noises ε_i (C×H×W or 1×C×H×W each; norms over all channels of V's pixels).
        original: L(x) (H×W).
        valid: V (H×W bool).
    Returns:
        The estimate, or None without noisy inputs (or with only zero noise).
    """
    v = torch.as_tensor(valid).bool().cpu()
    base = torch.as_tensor(original).double().cpu()[v]
    ratios = []
    for m, e in zip(noisy, noises, strict=True):
        eps = torch.as_tensor(e).double().cpu().reshape(-1, *v.shape)[:, v]
        size = float(eps.norm())
        if size > 0:
            ratios.append(float((torch.as_tensor(m).double().cpu()[v] - base).norm()) / size)
    return max(ratios) if ratios else None
