"""Eigen-Grad-CAM (pytorch-grad-cam's EigenGradCAM; Eigen-CAM of Muhammad & Yeasin 2020 applied to the
gradient-weighted activations): per class, the element-wise product of the region score's gradient and
the activations projected on its first principal component.

With M_c = G_c ⊙ A (G_c = ∂s_c/∂A; K channels, h×w) as hw rows of K values and M̄_c its rows centred,

    M̄_c = U Σ Vᵀ,   L_c = ReLU(± M̄_c v₁)        v₁: the first right singular vector

with the sign (which SVD leaves open) that makes L_c correlate positively with Σ_k M_c,k (HiResCAM's
map), as Eigen-CAM's sign follows Σ_k A_k. pytorch-grad-cam keeps the sign numpy's SVD returns, so
its map is the complement of this one wherever that sign is the other. Then Up and min-max.
"""

from __future__ import annotations

import torch

from .base import Forward
from .cam import GradientCAM, agreeing_sign, first_component
from .registry import register


@register("eigengradcam", label="Eigen-Grad-CAM")
class EigenGradCAM(GradientCAM):
    """Eigen-Grad-CAM: the first principal component of gradient ⊙ activation, per class."""

    def attribute(self, fwd: Forward) -> torch.Tensor:
        grads, acts = self.gradients(fwd)  # N×K×h×w×C', N×K×h×w
        n, k, h, w, c = grads.shape
        rows = (grads * acts.unsqueeze(-1)).permute(0, 4, 2, 3, 1).reshape(n * c, h * w, k)
        projection, v = first_component(rows)
        sign = agreeing_sign(projection, rows.sum(-1))
        fwd.extra["weights"] = (v * sign).view(n, c, k).transpose(1, 2)
        fwd.stats.setdefault("channels", k)
        return self.layer_map((projection * sign).view(n, c, h, w), fwd)
