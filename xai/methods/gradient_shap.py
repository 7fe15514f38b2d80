"""GradientSHAP (Lundberg & Lee, NeurIPS 2017; captum's expected-gradients form) with the region score as
target: the mean over n_samples draws of (x + ε − x̄) ⊙ ∂s_c(x̄ + α(x + ε − x̄))/∂x, α ~ U(0, 1),
ε ~ N(0, stdev²), x̄ drawn from the baselines {the dataset's mean colour, black} on the photograph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..options import option
from .attribution import AttributionOptions, CaptumAttribution
from .base import Forward
from .perturbation import black_pixel
from .registry import register


@dataclass(frozen=True)
class GradientSHAPOptions(AttributionOptions):
    shap_samples: int = option(20, "random draws of baseline, noise and α per class", key="samples", minimum=1)
    shap_stdev: float = option(0.1, "noise added to the input, in normalised units", minimum=0.0)


@register("gradient_shap", label="GradientSHAP")
class GradientSHAP(CaptumAttribution):
    Options = GradientSHAPOptions
    options: GradientSHAPOptions

    captum_class = "GradientShap"

    def captum_arguments(self, x: torch.Tensor, fwd: Forward, n: int, batch_size: int) -> dict[str, Any]:
        on_photo = fwd.valid[n]
        black = black_pixel(self.options, x.device)
        baselines = torch.stack(
            [torch.where(on_photo, torch.zeros_like(x[n]), x[n]), torch.where(on_photo, black.expand_as(x[n]), x[n])]
        )
        return {"baselines": baselines, "n_samples": self.options.shap_samples, "stdevs": self.options.shap_stdev}
