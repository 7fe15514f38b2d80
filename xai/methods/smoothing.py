"""The two smoothings every CAM may take (pytorch-grad-cam's `eigen_smooth` and `aug_smooth`).

eigen_smooth: a class's map is the first principal component of its weighted activations instead of
their sum. With M_c = w_c · A (channel weights: M_c,k = w_kc A_k; element-wise: w_kc ⊙ A_k) as hw rows of
K values and M̄_c its rows centred on their mean,

    M̄_c = U Σ Vᵀ,   L_c = ± M̄_c v₁        v₁: the first right singular vector

(pytorch-grad-cam's get_2d_projection of the weighted activations), with the sign that makes L_c correlate
non-negatively with the map it replaces, Σ_k M_c,k (as Eigen-Grad-CAM's; pytorch-grad-cam keeps the sign
numpy's SVD returns). NaN entries of M count as 0, as theirs. Then ReLU, Up and min-max as every CAM.

aug_smooth: the mean of the maps of six views of the input, each mapped back to the photograph,

    A_c = mean_t T_t⁻¹( minmax_V( ReLU(A_c(T_t x)) ) )      T_t x = m_t · flip_t(x)

flip_t ∈ {no, horizontal}, m_t ∈ {0.9, 1, 1.1} (pytorch-grad-cam's default test-time augmentation: ttach's
HorizontalFlip × Multiply([0.9, 1, 1.1]) on the normalised input), T_t⁻¹ flipping a map back. Each view's
target is the target of x seen through that view: the region R_c and every other setting (contrast
weights, the explained classes) come from x, and the score of T_t x adds up the de-augmented output,

    s_c(T_t x) = Σ_{p∈R_c} [T_t⁻¹ P(T_t x)]_p = Σ_{p∈flip_t(R_c)} P_c(T_t x)_p

so the region of a flipped image is the flipped region (a callable score is given the de-augmented
output too). pytorch-grad-cam keeps a segmentation target's mask as it is for every view: for the
unflipped views and for a region that is its own mirror image (region="all") the two definitions are the
same. Each view's map is normalised before the mean, as pytorch-grad-cam's are; the mean is normalised again
by the explain path, which changes no correlation with theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["VIEWS", "View", "agreeing_sign", "first_component", "principal_map"]


def first_component(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For B matrices of hw rows of K values (B×hw×K): the centred rows on their first principal component
    (B×hw, sign as the SVD returns it) and that component v₁ (B×K): Ā = U Σ Vᵀ, p = Ā v₁."""
    centred = rows - rows.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    v = vh[:, 0, :]
    return (centred @ v.unsqueeze(-1)).squeeze(-1), v


def agreeing_sign(projection: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """B×1 signs ±1 that make each row of projection (B×hw) correlate non-negatively with reference's."""
    p = projection - projection.mean(1, keepdim=True)
    r = reference - reference.mean(1, keepdim=True)
    return torch.where((p * r).sum(1) < 0, -1.0, 1.0).view(-1, 1)


@dataclass(frozen=True)
class View:
    """One view of aug_smooth: x -> factor · (x flipped left to right, if flip)."""

    flip: bool
    factor: float

    @property
    def identity(self) -> bool:
        return not self.flip and self.factor == 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """T x for N×C×H×W inputs."""
        x = x.flip(-1) if self.flip else x
        return x * self.factor if self.factor != 1.0 else x

    def undo(self, t: torch.Tensor) -> torch.Tensor:
        """T⁻¹ of a map or of the model's output (…×H×W): flipped back; the factor changes no position."""
        return t.flip(-1) if self.flip else t


# the identity first: its forward pass is the call's own (its weights and statistics are the result's)
VIEWS = (View(False, 1.0), View(False, 0.9), View(False, 1.1), View(True, 0.9), View(True, 1.0), View(True, 1.1))


def principal_map(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """L (N×C'×h×w): each class's weighted activations M_c (channel weights N×K×C' or element-wise
    N×K×h×w×C', activations N×K×h×w) projected on their first principal component, the sign agreeing
    with Σ_k M_c,k (module docstring)."""
    if weights.dim() == 3:
        weighted = weights[:, :, None, None, :] * acts.unsqueeze(-1)
    else:
        weighted = weights * acts.unsqueeze(-1)
    n, k, h, w, c = weighted.shape
    rows = torch.nan_to_num(weighted, nan=0.0).permute(0, 4, 2, 3, 1).reshape(n * c, h * w, k)
    projection, _ = first_component(rows)
    sign = agreeing_sign(projection, rows.sum(-1))
    return (projection * sign).view(n, c, h, w)
