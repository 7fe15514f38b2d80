"""Properties of explanation maps that papers claim for one method over another (the researchers' manual: "more stable,
better for small objects and multiple instances, sharper, less noisy"), each as a number.

For a map L ≥ 0 (H×W) on the photograph's pixels V, a class region R (H×W bool) and its ground truth:

    complexity      −Σ_V p log p / log|V|, p = L / Σ_V L          (Bhatt et al. 2020; 1 for a uniform map)
    sparseness      Gini index of L over V: Σ_i (2i − n − 1) L_(i) / (n Σ L), L_(i) ascending
                    (Chalasani et al. 2020; 0 for a uniform map, → 1 for a single pixel)
    ring            B = the pixels of V within `width` pixels of R (8-neighbourhood dilation) but not in R:
                    ratio = mean_R L / mean_B L (∞ when B holds no energy), share = Σ_B L / Σ_V L
    outside         Σ_{V∖R} L / Σ_V L: the share of the map on the class's surroundings
    size bins       the connected components of the ground truth, binned by area (pixels at the input):
                    per bin b with truth T_b, the other components excluded from V: V_b = V ∖ (GT ∖ T_b),
                    energy pointing game Σ_{T_b} L / Σ_{V_b} L, rank accuracy |top-|T_b| of L over V_b ∩ T_b| / |T_b|
    instance share  of a map explaining one component K of a class: Σ_K L / Σ_{all components} L
    max-sensitivity max_i ‖L(x + ε_i) − L(x)‖ / ‖L(x)‖ over n seeded noisy inputs (Yeh et al. 2019), with
                    the Spearman correlation of L(x + ε_i) and L(x) over V beside it (mean over i)

A value that does not exist (an all-zero map, an empty region) is None.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

__all__ = [
    "complexity",
    "component_bins",
    "instance_share",
    "max_sensitivity",
    "outside_share",
    "ring",
    "size_localisation",
    "sparseness",
]


def _values(cam: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(cam).double()[torch.as_tensor(valid).bool()].clamp_min(0)


def complexity(cam: torch.Tensor, valid: torch.Tensor) -> float | None:
    v = _values(cam, valid)
    total = float(v.sum())
    if total <= 0 or v.numel() < 2:
        return None
    p = v / total
    return float(-(p[p > 0] * torch.log(p[p > 0])).sum() / math.log(v.numel()))


def sparseness(cam: torch.Tensor, valid: torch.Tensor) -> float | None:
    v = torch.sort(_values(cam, valid)).values
    total, n = float(v.sum()), v.numel()
    if total <= 0:
        return None
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * i - n - 1) * v).sum() / (n * total))


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def ring(
    cam: torch.Tensor, region: torch.Tensor, valid: torch.Tensor, width: int = 3
) -> tuple[float | None, float | None]:
    """(inside/ring mean ratio, the ring's share of the energy)."""
    L = torch.as_tensor(cam).double().clamp_min(0).numpy()
    R = torch.as_tensor(region).bool().numpy() & torch.as_tensor(valid).bool().numpy()
    V = torch.as_tensor(valid).bool().numpy()
    B = _dilate(R, width) & ~R & V
    total = float(L[V].sum())
    if not R.any() or not B.any() or total <= 0:
        return None, None
    inside, band = float(L[R].mean()), float(L[B].mean())
    ratio = math.inf if band == 0 else inside / band
    return ratio, float(L[B].sum() / total)


def outside_share(cam: torch.Tensor, region: torch.Tensor, valid: torch.Tensor) -> float | None:
    L = torch.as_tensor(cam).double().clamp_min(0)
    V = torch.as_tensor(valid).bool()
    total = float(L[V].sum())
    if total <= 0:
        return None
    return float(L[V & ~torch.as_tensor(region).bool()].sum() / total)


def component_bins(truth: torch.Tensor, bins: tuple[int, ...]) -> list[torch.Tensor]:
    """One H×W bool mask per area bin [0, b₀), [b₀, b₁), ..., [b_last, ∞): the components that fall in it."""
    mask = torch.as_tensor(truth).bool().numpy().astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    edges = [0, *bins, math.inf]
    out = [np.zeros(mask.shape, bool) for _ in range(len(edges) - 1)]
    for k in range(1, count):
        area = stats[k, cv2.CC_STAT_AREA]
        b = next(i for i in range(len(edges) - 1) if edges[i] <= area < edges[i + 1])
        out[b] |= labels == k
    return [torch.from_numpy(m) for m in out]


def size_localisation(
    cam: torch.Tensor, truth: torch.Tensor, part: torch.Tensor, valid: torch.Tensor
) -> tuple[float | None, float | None]:
    """(energy pointing game, rank accuracy) of the components `part` of the ground truth `truth`."""
    L = torch.as_tensor(cam).double().clamp_min(0)
    T = torch.as_tensor(part).bool() & torch.as_tensor(valid).bool()
    Vb = torch.as_tensor(valid).bool() & ~(torch.as_tensor(truth).bool() & ~T)
    k = int(T.sum())
    total = float(L[Vb].sum())
    if k == 0 or total <= 0:
        return None, None
    values, inside = L[Vb], T[Vb]
    top = torch.argsort(values, descending=True, stable=True)[:k]
    return float(L[T].sum() / total), float(inside[top].sum()) / k


def instance_share(cam: torch.Tensor, component: torch.Tensor, components: torch.Tensor) -> float | None:
    L = torch.as_tensor(cam).double().clamp_min(0)
    total = float(L[torch.as_tensor(components).bool()].sum())
    if total <= 0:
        return None
    return float(L[torch.as_tensor(component).bool()].sum() / total)


def max_sensitivity(
    noisy: list[torch.Tensor], original: torch.Tensor, valid: torch.Tensor
) -> tuple[float | None, float | None]:
    """(max relative change, mean Spearman) of the maps of noisy inputs against the original map, over V."""
    from .sanity import spearman

    v = torch.as_tensor(valid).bool()
    base = torch.as_tensor(original).double()[v]
    norm = float(base.norm())
    if norm <= 0 or not noisy:
        return None, None
    changes = [float((torch.as_tensor(m).double()[v] - base).norm()) / norm for m in noisy]
    rhos = [spearman(torch.as_tensor(m).double()[v], base) for m in noisy]
    finite = [r for r in rhos if math.isfinite(r)]
    return max(changes), (float(np.mean(finite)) if finite else None)
