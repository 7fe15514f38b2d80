"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the target layer's activations projected on their first
principal component, the same map for every class (class-agnostic: no score, no gradient).

With A (K channels, h×w) as hw rows of K values and Ā its rows centred on their mean,

    Ā = U Σ Vᵀ,   L = ReLU(± Ā v₁)        v₁: the first right singular vector

as pytorch-grad-cam's get_2d_projection, with the sign (which SVD leaves open) chosen so that L
correlates positively with the channels' total activation Σ_k A_k (else a run could show either the
object or its complement). Then Up and min-max as every CAM.
"""

from __future__ import annotations

import torch

from .base import Forward
from .cam import BaseCAM, agreeing_sign, first_component
from .registry import register


@register("eigencam", label="Eigen-CAM")
class EigenCAM(BaseCAM):
    """Eigen-CAM: the first principal component of the activations (one map for every class)."""

    class_specific = False

    def attribute(self, fwd: Forward) -> torch.Tensor:
        assert fwd.activations is not None
        acts = fwd.activations.detach().float()
        n, k, h, w = acts.shape
        rows = acts.flatten(2).transpose(1, 2)  # N×hw×K
        projection, v = first_component(rows)
        sign = agreeing_sign(projection, rows.sum(-1))
        fwd.extra["weights"] = (v * sign).unsqueeze(-1).expand(n, k, len(fwd.classes))
        fwd.stats.update(channels=k, forwards=1)
        return self.layer_map((projection * sign).view(n, 1, h, w), fwd)
