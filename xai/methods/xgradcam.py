"""XGrad-CAM (Fu et al., BMVC 2020): Grad-CAM's weights with each cell weighted by its share of the
channel's activation, the weights that satisfy the paper's sensitivity and conservation axioms:

    w_kc = Σ_ij (A_k[i,j] / Σ_ab A_k[a,b]) · ∂s_c/∂A_k[i,j]      (0 for a channel with Σ_ab A_k = 0)
    L_c  = ReLU(Σ_k w_kc A_k)
"""

from __future__ import annotations

import torch

from .cam import GradientCAM
from .registry import register


@register("xgradcam", label="XGrad-CAM")
class XGradCAM(GradientCAM):
    """XGrad-CAM: activation-weighted gradients, summed per channel."""

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        total = acts.sum(dim=(2, 3), keepdim=True)  # N×K×1×1
        share = torch.where(total != 0, acts / torch.where(total != 0, total, torch.ones_like(total)), 0.0)
        return (share.unsqueeze(-1) * grads).sum(dim=(2, 3))  # N×K×C'
