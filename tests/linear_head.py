"""A model with a known answer: class logits are a 1×1 convolution of the target layer's activations.

With score="logit" and region="all", s_c = Σ_p Σ_k W_ck A_k,p + const, so ∂s_c/∂A_k,p = W_ck at every
cell: Grad-CAM and HiResCAM both give L_c = Σ_k W_ck A_k (the logit map minus its bias: the original
CAM of Zhou et al. 2016), LayerCAM gives Σ_k ReLU(W_ck) A_k, and Grad-CAM++ weighs channel k by
Σ_ij ReLU(W_ck) / (2 + W_ck Σ_ab A_k,ab).
"""

from __future__ import annotations

import torch


class LinearHead(torch.nn.Module):
    def __init__(self, channels: int = 6, classes: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Conv2d(channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def activations(model: LinearHead, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.features(x)


def minmax(t: torch.Tensor) -> torch.Tensor:
    lo, hi = t.amin((-2, -1), keepdim=True), t.amax((-2, -1), keepdim=True)
    return torch.where(hi > lo, (t - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(t))
