"""KernelSHAP (Lundberg & Lee, NeurIPS 2017) over SLIC superpixels through captum (xai.methods.surrogate):
Shapley values of the superpixels for the region score, from a weighted linear regression on
n_samples coalitions (Shapley kernel weights)."""

from __future__ import annotations

from typing import Any

from .registry import register
from .surrogate import SuperpixelSurrogate


@register("kernel_shap", label="KernelSHAP")
class KernelSHAP(SuperpixelSurrogate):
    def captum_method(self, forward: Any) -> Any:
        from captum.attr import KernelShap

        return KernelShap(forward)
