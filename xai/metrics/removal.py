"""Faithfulness by removing random subsets and superpixels of the photograph: Faithfulness Correlation and
IROF, as Quantus (Hedström et al. 2023) defines them, for a segmentation model's region score.

For an input x (1×3×H×W, normalised), the photograph's pixels V, a class c with its region R_c (fixed from
the unperturbed prediction), its score s_c(x') = mean over R_c of P_c(x') (xai.metrics.faithfulness) and
a map L ≥ 0 (H×W); "removing" a set of pixels sets them to 0 in all channels (the dataset's mean colour,
as deletion does):

    faithfulness correlation (Bhatt et al. 2020): T subsets S_t of V of m pixels each, drawn uniformly
        without replacement (seeded; the same subsets for every map and class, so that one forward per
        subset scores them all); a_t = Σ_{p∈S_t} L_p, Δ_t = s_c(x) − s_c(x with S_t removed);
        the Pearson correlation of (a_t) and (Δ_t) over t. Higher is better; None when either is constant.
    IROF (Rieger & Hansen 2020): V cut into K superpixels G_1..G_K (SLIC, skimage: the photograph min-max
        scaled to [0, 1] over V, n_segments superpixels asked, compactness 10, only V segmented: a
        deterministic function of the image), ordered by the mean of L over each, largest first (ties by
        label); q_k = s_c(x with G_(1)..G_(k) removed) / s_c(x) for k = 0..K (q_0 = 1);
        IROF = 1 − Σ_{k=0}^{K−1} (q_k + q_{k+1}) / 2K: the area over the normalised curve at t_k = k/K,
        as deletion's AUC is taken (0 for a score that never falls). Higher is better; None when
        s_c(x) = 0. Quantus' IROF leaves q_0 out and spaces the points by 1: it is K·IROF + (1 + q_1)/2.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["faithfulness_correlation", "irof", "random_subsets", "removal_masks", "segment_order", "superpixels"]


def random_subsets(valid: torch.Tensor, count: int, size: int, seed: int) -> torch.Tensor:
    """count×H×W bool: count subsets S_t of V of min(size, |V|) pixels each, drawn uniformly without
    replacement from V's pixels in raster order by numpy's generator seeded with `seed`."""
    v = torch.as_tensor(valid).bool().cpu()
    pixels = torch.nonzero(v.flatten()).flatten().numpy()
    rng = np.random.default_rng(seed)
    out = torch.zeros((count, v.numel()), dtype=torch.bool)
    for t in range(count):
        out[t, rng.choice(pixels, size=min(size, len(pixels)), replace=False)] = True
    return out.view(count, *v.shape)


def faithfulness_correlation(cam: torch.Tensor, subsets: torch.Tensor, y: float, scores: np.ndarray) -> float | None:
    """Pearson r of a_t = Σ_{S_t} L and Δ_t = y − scores[t] over the T subsets (T×H×W bool).

    Args:
        cam: the map L (H×W).
        subsets: the subsets S_t (T×H×W bool).
        y: s_c(x).
        scores: s_c(x with S_t removed), T values.
    Returns:
        r, or None when a_t or Δ_t is constant (or T < 2).
    """
    L = torch.as_tensor(cam).double().cpu()
    a = (torch.as_tensor(subsets).double() * L).flatten(1).sum(1).numpy()
    delta = float(y) - np.asarray(scores, dtype=np.float64)
    if len(a) < 2 or np.std(a) == 0 or np.std(delta) == 0:
        return None
    return float(np.corrcoef(a, delta)[0, 1])


def superpixels(x: torch.Tensor, valid: torch.Tensor, n_segments: int = 100) -> torch.Tensor:
    """H×W int64: the label 1..K of each pixel of V's superpixel (SLIC on the photograph min-max scaled over
    V, compactness 10), 0 off V."""
    from skimage.segmentation import slic

    v = torch.as_tensor(valid).bool().cpu()
    img = torch.as_tensor(x).detach().double().cpu().reshape(-1, *v.shape).permute(1, 2, 0).numpy()
    inside = img[v.numpy()]
    lo, hi = inside.min(), inside.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    labels = slic(img, n_segments=n_segments, compactness=10, start_label=1, mask=v.numpy(), channel_axis=-1)
    return torch.from_numpy(np.asarray(labels, dtype=np.int64)) * v


def segment_order(cam: torch.Tensor, segments: torch.Tensor) -> list[int]:
    """The labels 1..K of `segments` by the mean of L over each, largest first (ties: smaller label first)."""
    L = torch.as_tensor(cam).double().cpu().flatten()
    s = torch.as_tensor(segments).cpu().flatten()
    labels = [int(k) for k in torch.unique(s) if k > 0]
    means = [float(L[s == k].mean()) for k in labels]
    return [labels[i] for i in sorted(range(len(labels)), key=lambda i: -means[i])]


def removal_masks(segments: torch.Tensor, order: list[int]) -> torch.Tensor:
    """K×H×W bool: mask k holds the superpixels order[0..k] (the first k + 1 removed)."""
    s = torch.as_tensor(segments)
    rank = torch.full(s.shape, len(order), dtype=torch.long)
    for i, k in enumerate(order):
        rank[s == k] = i
    return torch.stack([rank <= i for i in range(len(order))])


def irof(y: float, scores: np.ndarray) -> float | None:
    """1 − the trapezoid of q_0 = 1, q_k = scores[k−1]/y (k = 1..K) at t_k = k/K, K = len(scores).

    Args:
        y: s_c(x).
        scores: s_c(x with the first k superpixels removed), k = 1..K.
    Returns:
        IROF, or None when y = 0 or there is no superpixel.
    """
    K = len(scores)
    if K == 0 or not y > 0:
        return None
    q = np.concatenate([[1.0], np.asarray(scores, dtype=np.float64) / float(y)])
    value = 1 - float(np.sum((q[1:] + q[:-1]) / 2)) / K
    return value if math.isfinite(value) else None
