"""HiResCAM (Draelos & Carin, 2020): the gradient multiplies the activation element-wise, without
Grad-CAM's spatial averaging, so the map is faithful to the model's computation cell by cell:

    L_c = ReLU(Σ_k ∂s_c/∂A_k ⊙ A_k)
"""

from __future__ import annotations

import torch

from .cam import GradientCAM
from .registry import register


@register("hirescam", label="HiResCAM")
class HiResCAM(GradientCAM):
    """HiResCAM: element-wise weights, the gradient itself."""

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return grads  # N×K×h×w×C'
