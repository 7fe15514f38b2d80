"""Grad-CAM++ (Chattopadhay et al., WACV 2018), with the paper's closed form for an exponential score.

With g = ∂s_c/∂A_k[i,j] and S_c = exp(s_c), the higher derivatives of S_c are exp(s_c)·g² and
exp(s_c)·g³, and eq. 19 of the paper gives

    α_kc[i,j] = g² / (2·g² + (Σ_ab A_k[a,b])·g³)          (0 where g = 0)
    w_kc      = Σ_ij α_kc[i,j] · ReLU(g)                   L_c = ReLU(Σ_k w_kc A_k)

The paper's w uses ReLU(∂S_c/∂A) = exp(s_c)·ReLU(g); the factor exp(s_c) > 0 is one constant per
class and map, which min-max scaling removes, so it is left out (as pytorch-grad-cam does). Only
g > 0 contributes, and there α = 1 / (2 + (Σ_ab A_k[a,b])·g) exactly (g² cancels), which needs no
epsilon while Σ_ab A_k ≥ 0 (post-ReLU layers); a zero denominator (possible only for layers with
negative activations) gives α = 0. pytorch-grad-cam adds 1e-6 to the uncancelled denominator, which
lowers α for gradients below about 1e-3.
"""

from __future__ import annotations

import torch

from .cam import GradientCAM
from .registry import register


@register("gradcampp", label="Grad-CAM++")
class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++: positive gradients weighted pixel by pixel by α, summed per channel."""

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        total = acts.sum(dim=(2, 3))[:, :, None, None, None]  # Σ_ab A_k[a,b], per image and channel
        denominator = 2 + total * grads
        positive = (grads > 0) & (denominator != 0)
        alpha = torch.where(positive, 1 / torch.where(positive, denominator, torch.ones_like(denominator)), 0.0)
        return (alpha * torch.relu(grads)).sum(dim=(2, 3))  # N×K×C'
