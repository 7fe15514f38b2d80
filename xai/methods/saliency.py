"""Saliency (Simonyan et al., 2014) and SmoothGrad (Smilkov et al., 2017) through captum, with the region
score as target:

    saliency     a = ∂s_c/∂x            (captum's Saliency takes |·|; here the signed gradient, so that
                                         the positive part keeps the pixels that raise s_c)
    smoothgrad   the mean of a over nt_samples copies x + ε, ε ~ N(0, nt_stdev²) (captum's NoiseTunnel)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..options import option
from .attribution import NT_TYPES, AttributionOptions, CaptumAttribution
from .base import Forward
from .registry import register


@register("saliency", label="Saliency")
class Saliency(CaptumAttribution):
    captum_class = "Saliency"

    def captum_arguments(self, x: torch.Tensor, fwd: Forward, n: int, batch_size: int) -> dict[str, Any]:
        return {"abs": False}


@dataclass(frozen=True)
class SmoothGradOptions(AttributionOptions):
    nt_samples: int = option(25, "SmoothGrad: average over N noisy copies of the input", minimum=1)
    nt_type: str = option("smoothgrad", "SmoothGrad: smoothgrad, smoothgrad_sq or vargrad", choices=NT_TYPES)


@register("smoothgrad", label="SmoothGrad")
class SmoothGrad(Saliency):
    Options = SmoothGradOptions
