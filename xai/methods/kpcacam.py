"""KPCA-CAM (Karmani et al. 2024, arXiv:2410.00267; pytorch-grad-cam's KPCA_CAM): Eigen-CAM with kernel
PCA, the same map for every class (class-agnostic: no score, no gradient).

With A (K channels, h×w) as hw rows x_i of K values, centred on their mean, a kernel matrix
κ_ij = k(x_i, x_j), centred in feature space (K̃ = κ − 1κ − κ1 + 1κ1, 1 = the hw×hw matrix of 1/hw),
and u₁, λ₁ the eigenvector and eigenvalue of K̃ with the largest eigenvalue,

    L = ReLU(± u₁ √λ₁)        the sign that makes the largest magnitude positive

as pytorch-grad-cam's get_2d_projection_kernel (scikit-learn's KernelPCA(n_components=1), whose sign
flip, svd_flip, makes each component's largest magnitude positive). Kernels as scikit-learn's, γ = 1/K
unless given, c₀ = 1, degree 3:

    sigmoid tanh(γ⟨x,y⟩ + c₀) (pytorch-grad-cam's default)   rbf exp(−γ‖x − y‖²)
    poly (γ⟨x,y⟩ + c₀)³    linear ⟨x,y⟩ (= Eigen-CAM up to its sign)    cosine ⟨x,y⟩ / (‖x‖ ‖y‖)

K̃ is hw×hw: its eigenvector comes from a dense eigendecomposition up to 2,048 cells and from LOBPCG
(torch.lobpcg, the largest eigenvalue) above, where the dense one costs O(hw³). Then Up and min-max.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .base import Forward
from .cam import BaseCAM, CAMOptions
from .registry import register

KERNELS = ("sigmoid", "rbf", "poly", "linear", "cosine")
DENSE_CELLS = 2048  # above: LOBPCG instead of a dense eigendecomposition


@dataclass(frozen=True)
class KPCACAMOptions(CAMOptions):
    kpca_kernel: str = option("sigmoid", "KPCA-CAM's kernel of the activations' rows", choices=KERNELS, key="kernel")
    kpca_gamma: float | None = option(
        None, "KPCA-CAM's kernel coefficient γ (default: 1/channels)", key="gamma", minimum=0.0
    )


def kernel_matrix(x: torch.Tensor, kernel: str, gamma: float) -> torch.Tensor:
    """κ (B×n×n) of the rows of x (B×n×K), scikit-learn's pairwise kernels with c₀ = 1, degree 3."""
    dot = x @ x.transpose(1, 2)
    if kernel == "linear":
        return dot
    if kernel == "poly":
        return (gamma * dot + 1.0) ** 3
    if kernel == "sigmoid":
        return torch.tanh(gamma * dot + 1.0)
    sq = dot.diagonal(dim1=1, dim2=2)
    if kernel == "rbf":
        return torch.exp(-gamma * (sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * dot).clamp_min(0))
    inv = torch.where(sq > 0, sq.clamp_min(1e-30).rsqrt(), torch.zeros_like(sq))  # cosine; a zero row: 0
    return dot * inv.unsqueeze(2) * inv.unsqueeze(1)


def top_component(kc: torch.Tensor) -> torch.Tensor:
    """u₁ √λ₁ (B×n) of symmetric matrices kc (B×n×n), λ₁ the largest eigenvalue (clipped at 0)."""
    if kc.shape[-1] <= DENSE_CELLS:
        values, vectors = torch.linalg.eigh(kc)
        return vectors[..., -1] * values[..., -1:].clamp_min(0).sqrt()
    out = []
    for m in kc:
        value, vector = torch.lobpcg(m, k=1, largest=True)
        out.append(vector[:, 0] * value.clamp_min(0).sqrt())
    return torch.stack(out)


@register("kpcacam", label="KPCA-CAM")
class KPCACAM(BaseCAM):
    """KPCA-CAM: the first kernel principal component of the activations (one map for every class)."""

    Options = KPCACAMOptions
    class_specific = False

    def attribute(self, fwd: Forward) -> torch.Tensor:
        assert fwd.activations is not None
        acts = fwd.activations.detach().float()
        n, k, h, w = acts.shape
        rows = acts.flatten(2).transpose(1, 2)  # N×hw×K
        rows = rows - rows.mean(dim=1, keepdim=True)
        gamma = self.options.kpca_gamma if self.options.kpca_gamma is not None else 1.0 / k
        km = kernel_matrix(rows, self.options.kpca_kernel, gamma)
        kc = km - km.mean(1, keepdim=True) - km.mean(2, keepdim=True) + km.mean((1, 2), keepdim=True)
        projection = top_component(kc)
        sign = torch.where(projection.amin(1).abs() > projection.amax(1).abs(), -1.0, 1.0).view(-1, 1)
        fwd.stats.update(channels=k, forwards=1)
        return self.layer_map((projection * sign).view(n, 1, h, w), fwd)
