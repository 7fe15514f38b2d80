"""KernelSHAP (Lundberg & Lee, NeurIPS 2017) over SLIC superpixels through captum (xai.methods.surrogate):
Shapley values of the superpixels for the region score, from a weighted linear regression on
n_samples coalitions (Shapley kernel weights)."""

from __future__ import annotations

from .registry import register
from .surrogate import SuperpixelSurrogate


@register("kernel_shap", label="KernelSHAP")
class KernelSHAP(SuperpixelSurrogate):
    captum_class = "KernelShap"
