"""SS-CAM (Smoothed Score-CAM; Wang, Naidu et al. 2020, arXiv:2006.14255): Score-CAM's channel scores
averaged over N noisy copies of each channel's mask.

With Score-CAM's H_k = minmax(Up(A_k)), x_b and region score s_c (xai.methods.scorecam):

    M_ki = H_k + δ_i                              δ_i ~ N(0, σ²), H×W, i = 1..N
    w_kc = (1/N) Σ_i s_c(f(x ⊙ M_ki)) − s_c(f(x_b))
    L_c  = ReLU(Σ_k w_kc A_k)                     after Score-CAM's weighting (centred, raw or softmax)

Everything else is Score-CAM's engine (its batches, precision, channel selection, baseline and
weighting): N · K masked forwards per image. The N noise maps are drawn on the CPU from `seed` (the same
maps on every device and for every image and channel of a call, so that an image's map does not depend
on the others, and channels are compared under the same noise: the expectation over δ is SS-CAM's, the
Monte-Carlo error of the differences between channels smaller); they are held on the device (N·H·W
floats). σ = 0 (any N) is Score-CAM. torch-cam 0.5.0's SSCAM (the defaults N = 35, σ = 2)
draws independent noise per image and channel, min-max scales A_k before upsampling it, takes softmax
weights and also scores the noise alone on a constant channel (here w = 0, no forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .registry import register
from .scorecam import MaskCopy, ScoreCAM, ScoreCAMOptions


@dataclass(frozen=True)
class SSCAMOptions(ScoreCAMOptions):
    noise_samples: int = option(35, "SS-CAM: noisy copies N of each channel's mask", key="samples", minimum=1)
    noise_stdev: float = option(
        2.0, "SS-CAM: standard deviation σ of the Gaussian noise added to the masks (in [0, 1])", key="stdev", minimum=0
    )


def noise_maps(n: int, size: tuple[int, int], stdev: float, seed: int) -> torch.Tensor:
    """n×1×H×W: δ_i ~ N(0, σ²), drawn on the CPU from `seed` (the same noise on every device)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, 1, *size, generator=gen) * float(stdev)


@register("sscam", label="SS-CAM")
class SSCAM(ScoreCAM):
    """SS-CAM: Score-CAM's weights, each the mean score of N noisy copies of the channel's mask."""

    Options = SSCAMOptions
    options: SSCAMOptions

    def mask_copies(self, size: tuple[int, int], device: torch.device) -> tuple[int, MaskCopy]:
        o = self.options
        noise = noise_maps(o.noise_samples, size, o.noise_stdev, o.seed).to(device)
        return o.noise_samples, lambda masks, copy: masks + noise[copy]
