"""Seg-Eigen-CAM (Chung & Ying, Applied Sciences 2025, 15(13) 7562), Eigen-CAM made for segmentation:
the absolute gradient of the region score weights the activations cell by cell (eq. 10), the product is
projected on its first principal component (eq. 11-12), and the sign is the one that makes the
projection's largest magnitude positive (eq. 13).

With M_c = |G_c| ⊙ A (G_c = ∂s_c/∂A; K channels, h×w) as hw rows of K values, M̄_c its rows centred,

    M̄_c = U Σ Vᵀ,   p = M̄_c v₁,   L_c = ReLU(−p) if |min p| > |max p| else ReLU(p)

as pytorch-grad-cam 1.5.7's SegEigenCAM (get_2d_projection_with_sign_correction). Then Up and min-max.
"""

from __future__ import annotations

import torch

from .base import Forward
from .cam import GradientCAM, first_component
from .registry import register


@register("segeigencam", label="Seg-Eigen-CAM")
class SegEigenCAM(GradientCAM):
    """Seg-Eigen-CAM: the first principal component of |gradient| ⊙ activation, its largest value positive."""

    def attribute(self, fwd: Forward) -> torch.Tensor:
        grads, acts = self.gradients(fwd)  # N×K×h×w×C', N×K×h×w
        n, k, h, w, c = grads.shape
        rows = (grads.abs() * acts.unsqueeze(-1)).permute(0, 4, 2, 3, 1).reshape(n * c, h * w, k)
        projection, v = first_component(rows)
        sign = torch.where(projection.amin(1).abs() > projection.amax(1).abs(), -1.0, 1.0).view(-1, 1)
        fwd.extra["weights"] = (v * sign).view(n, c, k).transpose(1, 2)
        fwd.stats.setdefault("channels", k)
        return self.layer_map((projection * sign).view(n, c, h, w), fwd)
