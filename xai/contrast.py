"""Class-contrast scores: the score of class c minus other classes' scores over c's own region.

With s_k(R_c) the region score of class k over the region of the explained class c (xai.targets.RegionScore:
the sum, or the mean, of P_k over R_c; P the probability or the logit as `score` says):

    contrast=CLASS (id k):   s'_c = s_c(R_c) − s_k(R_c)
    contrast="auto":         s'_c = s_c(R_c) − α Σ_{k∈K_c} w_ck · s_k(R_c),   α = 1, where
        q_ck = (1/|R_c|) Σ_{p∈R_c} π_k,p   the model's own probability of k (the softmax of its logits, or its
                                           head's probabilities) averaged over R_c, on the explained input x
        K_c  = the min(3, C−1) classes k ≠ c of smallest |q_ck − q_cc| (the most similar; ties: lower id)
        w_ck = q_ck / Σ_{k'∈K_c} q_ck'     (0 where that sum is 0)

q, K and w are computed once per explained image from its unperturbed forward pass and then held fixed (they
are not differentiated, nor recomputed on perturbed inputs), so s'_c is linear in the per-pixel scores P,
as s_c is: gradient methods differentiate s'_c, perturbation methods score their perturbed inputs with it,
and the sweeps that sum P(x) − P(x') over R_c stay exact.

Finer-CAM (Zhang et al. 2025; pytorch-grad-cam 1.5.7 `FinerCAM` with `FinerWeightedTarget`) scores a
classifier's output y with p = softmax(y) as Σ_{k∈K} p_k (y_c − alpha · y_k) / (Σ_{k∈K} p_k + 1e-9), i.e.
y_c − alpha Σ_k (p_k / Σ p) y_k, with K the classes at positions `comparison_categories` = (1, 2, 3) of
the classes sorted by |y_k − y_c| (position 0 is c itself): the three nearest. Here y_k is s_k(R_c), p_k is
q_ck (the softmax of the model's per-pixel outputs averaged over R_c, rather than the softmax of the
region scores, which for pixel sums is one-hot), alpha is α = 1 (its default), comparison_categories are
(1, 2, 3) of the ranking by |q_ck − q_cc|. What differs: Finer-CAM differentiates through p (its weights
are part of the graph) and ranks by logits; here the weights are constants of the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .syncs import to_host
from .targets import RegionScore

__all__ = ["COMPARED", "CONTRAST_HELP", "Contrast", "auto_weights", "class_weights", "contrast_scores"]

COMPARED = 3  # Finer-CAM's comparison categories (1, 2, 3): the three most similar classes
CONTRAST_HELP = (
    "explain s_c − s_CLASS over c's region (a class name or output id), or 'auto': s_c minus the "
    "probability-weighted scores of the 3 classes most similar to c there (Finer-CAM's weighting)"
)


@dataclass
class Contrast:
    """The subtracted classes' weights of one explain call: M (N×C'×C, M[n, j, k] the weight of s_k in
    image n's contrast score of classes[j]) and the classes k with a weight anywhere (`used`)."""

    weights: torch.Tensor
    used: list[int]


def class_weights(k: int, n: int, explained: int, num_outputs: int, device: torch.device) -> Contrast:
    """M of contrast=CLASS: 1 at class k for every image and explained class."""
    m = torch.zeros(n, explained, num_outputs, device=device)
    m[:, :, k] = 1.0
    return Contrast(m, [k])


def auto_weights(probabilities: torch.Tensor, regions: torch.Tensor, classes: Sequence[int]) -> Contrast:
    """M of contrast="auto" (module docstring): probabilities N×C×H×W (π), regions N×C'×H×W (R)."""
    probabilities, regions = probabilities.detach().float(), regions.detach().float()
    num_outputs = probabilities.shape[1]
    area = regions.flatten(2).sum(-1).clamp_min(1)  # N×C'
    q = torch.einsum("nkhw,njhw->njk", probabilities, regions) / area[..., None]  # N×C'×C
    m = torch.zeros_like(q)
    compared = min(COMPARED, num_outputs - 1)
    for j, c in enumerate(classes):
        distance = (q[:, j] - q[:, j, c : c + 1]).abs()
        distance[:, c] = float("inf")
        order = torch.argsort(distance, dim=1, stable=True)[:, :compared]
        chosen = q[:, j].gather(1, order)
        total = chosen.sum(1, keepdim=True)
        m[:, j].scatter_(1, order, torch.where(total > 0, chosen / total.clamp_min(1e-30), 0.0))
    used = [int(k) for k in to_host(m.flatten(0, 1).abs().sum(0) > 0).nonzero()[0]]
    return Contrast(m, used)


def contrast_scores(
    score: RegionScore,
    P: torch.Tensor,
    regions: torch.Tensor,
    classes: Sequence[int],
    contrast: Contrast,
    image_index: torch.Tensor | None = None,
    image: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """s' (B×C'): score(P, regions, classes) − Σ_k M[n(b), j, k] · s_k(R_classes[j]) (module docstring), summed
    as one region score of P_c − Σ_k M P_k (subtracted pixel by pixel before the sum, which keeps s' accurate
    where it is small beside s_c). n(b) is image_index[b], else `image` for every row (regions C'×H×W of
    that image), else b. The difference is taken in float32 at least, the sum in `dtype`."""
    if image_index is not None:
        m = contrast.weights[image_index.to(contrast.weights.device)]
    elif image is not None:
        m = contrast.weights[image : image + 1].expand(P.shape[0], -1, -1)
    else:
        m = contrast.weights
    classes = list(classes)
    P = P.to(torch.promote_types(P.dtype, torch.float32))
    Q = P[:, classes] - torch.einsum("bjk,bkhw->bjhw", m.to(P.dtype), P)
    return score(Q, regions, list(range(len(classes))), image_index, dtype=dtype)
