"""LIME (Ribeiro et al., KDD 2016) over SLIC superpixels through captum (xai.methods.surrogate): a Lasso
(α = 0.01) of the region score on n_samples random subsets of superpixels, weighted by an exponential
kernel of their cosine distance to the whole image."""

from __future__ import annotations

from .registry import register
from .surrogate import SuperpixelSurrogate


@register("lime", label="LIME")
class LIME(SuperpixelSurrogate):
    captum_class = "Lime"
