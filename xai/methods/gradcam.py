"""Grad-CAM (Selvaraju et al., ICCV 2017) for segmentation: the channel weight is the spatial mean
of the region score's gradient,

    w_kc = (1 / hw) Σ_ij ∂s_c/∂A_k[i,j]            L_c = ReLU(Σ_k w_kc A_k)
"""

from __future__ import annotations

import torch

from .cam import GradientCAM
from .registry import register


@register("gradcam", label="Grad-CAM")
class GradCAM(GradientCAM):
    """Grad-CAM with the region scoring of every method here (xai.targets)."""

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))  # N×K×C'
