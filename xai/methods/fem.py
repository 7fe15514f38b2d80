"""FEM, the feature explanation method (Fuad et al., IPTA 2020; pytorch-grad-cam's FEM): each channel
weighted by the share of its cells that stand out of it by the k-sigma rule, the same map for every
class (class-agnostic: no score, no gradient).

With μ_k and σ_k the mean and (population) standard deviation of A_k over its h×w cells,

    w_k = (1 / hw) Σ_ij [A_k[i,j] > μ_k + k σ_k]        L = ReLU(Σ_k w_k A_k)

k = 2 (`--fem_k`), pytorch-grad-cam's default. Then Up and min-max as every CAM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..options import option
from .base import Forward
from .cam import BaseCAM, CAMOptions
from .registry import register


@dataclass(frozen=True)
class FEMOptions(CAMOptions):
    fem_k: float = option(2.0, "FEM's k-sigma rule: a cell counts above its channel's mean + k std", key="k")


@register("fem", label="FEM")
class FEM(BaseCAM):
    """FEM: channel weights = the share of the channel's cells above its mean + k standard deviations."""

    Options = FEMOptions
    class_specific = False

    def weights(self, fwd: Forward) -> torch.Tensor:
        assert fwd.activations is not None
        acts = fwd.activations.detach().float()
        mean = acts.mean(dim=(2, 3), keepdim=True)
        std = acts.std(dim=(2, 3), keepdim=True, unbiased=False)
        w = (acts > mean + self.options.fem_k * std).float().mean(dim=(2, 3))  # N×K
        fwd.stats.update(forwards=1)
        return w.unsqueeze(-1).expand(*w.shape, len(fwd.classes))
