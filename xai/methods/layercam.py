"""LayerCAM (Jiang et al., IEEE TIP 2021): only positive gradients count, element-wise, so the map
stays fine-grained at shallow layers (thin roots at encoder.layer1/2, not only layer4 blobs):

    L_c = ReLU(Σ_k ReLU(∂s_c/∂A_k) ⊙ A_k)
"""

from __future__ import annotations

import torch

from .cam import GradientCAM
from .registry import register


@register("layercam", label="LayerCAM")
class LayerCAM(GradientCAM):
    """LayerCAM: element-wise weights ReLU(gradient)."""

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        return torch.relu(grads)  # N×K×h×w×C'
