"""IS-CAM (Integrated Score-CAM; Naidu et al. 2020, arXiv:2010.03023): each channel's score averaged
over its mask at N scales, a Riemann sum of the path from the baseline to the masked input.

With Score-CAM's H_k = minmax(Up(A_k)), x_b and region score s_c (xai.methods.scorecam):

    w_kc = (1/N) Σ_{i=1..N} s_c(f(x ⊙ α_i H_k)) − s_c(f(x_b))
    α_i  = i/N                                    path "linear" (≈ ∫₀¹ s_c(f(x ⊙ α H_k)) dα)
    α_i  = Σ_{j=1..i} j/N = i(i+1)/(2N)           path "cumulative": torch-cam 0.5.0's code (its
                                                  docstring writes Σ_{j=0..i-1}; α_N = (N+1)/2 > 1)
    L_c  = ReLU(Σ_k w_kc A_k)                     after Score-CAM's weighting (centred, raw or softmax)

Everything else is Score-CAM's engine (its batches, precision, channel selection, baseline and
weighting): N · K masked forwards per image. N = 1 is Score-CAM on either path (α_1 = 1). torch-cam's
ISCAM (N = 10) takes softmax weights and min-max scales A_k before upsampling it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .registry import register
from .scorecam import MaskCopy, ScoreCAM, ScoreCAMOptions

PATHS = ("linear", "cumulative")


@dataclass(frozen=True)
class ISCAMOptions(ScoreCAMOptions):
    integration_steps: int = option(10, "IS-CAM: scales N of each channel's mask", key="steps", minimum=1)
    integration_path: str = option(
        "linear",
        "IS-CAM: the scales α_i, linear i/N or cumulative Σ_{j≤i} j/N (torch-cam 0.5.0's code)",
        choices=PATHS,
        key="path",
    )


def scales(n: int, path: str) -> torch.Tensor:
    """The N scales α_i of the masks (float32): i/N, or Σ_{j=1..i} j/N."""
    i = torch.arange(1, n + 1, dtype=torch.float64)
    alpha = i / n if path == "linear" else i * (i + 1) / (2 * n)
    return alpha.float()


@register("iscam", label="IS-CAM")
class ISCAM(ScoreCAM):
    """IS-CAM: Score-CAM's weights, each the mean score of the channel's mask at N scales."""

    Options = ISCAMOptions
    options: ISCAMOptions

    def mask_copies(self, size: tuple[int, int], device: torch.device) -> tuple[int, MaskCopy]:
        o = self.options
        alpha = scales(o.integration_steps, o.integration_path).to(device)
        return o.integration_steps, lambda masks, copy: masks * alpha[copy].view(-1, 1, 1, 1)
