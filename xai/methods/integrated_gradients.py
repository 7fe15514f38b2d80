"""Integrated Gradients (Sundararajan et al., ICML 2017) through captum, with the region score as target:

    a = (x − x̄) ⊙ ∫₀¹ ∂s_c(x̄ + α(x − x̄))/∂x dα       x̄ = 0 (the dataset's mean colour), on the photograph

(captum's Gauss-Legendre quadrature with `steps` points); padding keeps its value in the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..options import option
from .attribution import AttributionOptions, CaptumAttribution
from .base import Forward
from .registry import register


@dataclass(frozen=True)
class IntegratedGradientsOptions(AttributionOptions):
    steps: int = option(32, "points of the path integral from the baseline to the input", minimum=2)


@register("integrated_gradients", label="Integrated Gradients")
class IntegratedGradients(CaptumAttribution):
    Options = IntegratedGradientsOptions
    options: IntegratedGradientsOptions

    captum_class = "IntegratedGradients"
    captum_batches = True

    def captum_arguments(self, x: torch.Tensor, fwd: Forward, n: int, batch_size: int) -> dict[str, Any]:
        baseline = torch.where(fwd.valid[n], torch.zeros_like(x[n]), x[n]).unsqueeze(0)
        return {"baselines": baseline, "n_steps": self.options.steps, "internal_batch_size": batch_size}
