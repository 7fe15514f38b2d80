"""Grad-CAM element-wise (pytorch-grad-cam's GradCAMElementWise): the positive part of each channel's
gradient ⊙ activation, summed over the channels,

    L_c = ReLU(Σ_k ReLU(G_c,k ⊙ A_k))        G_c = ∂s_c/∂A

(HiResCAM with the ReLU inside the sum; LayerCAM's ReLU(G) ⊙ A for non-negative activations). As
element-wise weights of the CAM family: w_kc = G_c,k · [G_c,k ⊙ A_k > 0], since
w_kc ⊙ A_k = ReLU(G_c,k ⊙ A_k).
"""

from __future__ import annotations

import torch

from .cam import GradientCAM
from .registry import register


@register("gradcam_elementwise", label="Grad-CAM element-wise")
class GradCAMElementWise(GradientCAM):
    """Σ_k ReLU(∂s_c/∂A_k ⊙ A_k): only the positive contributions of each cell of each channel."""

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return grads * (grads * acts.unsqueeze(-1) > 0)  # N×K×h×w×C'
