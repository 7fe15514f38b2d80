"""Grad-CAM element-wise against the slow per-class reference Σ_k ReLU(g_k ⊙ A_k)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from tests.reference import GRADIENT_GRID, assert_gradient_method_matches
from xai import GradCAMElementWise, HiResCAM


@pytest.mark.parametrize("score,region,activation", GRADIENT_GRID)
def test_matches_reference(score, region, activation):
    assert_gradient_method_matches(GradCAMElementWise, "gradcam_elementwise", score, region, activation)


def test_the_relu_is_inside_the_sum(fpn):
    """Σ_k ReLU(g ⊙ A) ≥ ReLU(Σ_k g ⊙ A) at the layer: a different map from HiResCAM's, one backward per class."""
    x = image_batch(1, 32, 64)
    ours, hires = GradCAMElementWise(fpn, target_layer="encoder.layer3"), HiResCAM(fpn, target_layer="encoder.layer3")
    a, b = ours(x), hires(x)
    assert ours.last.stats["backwards"] == 5 and ours.last.weights.shape == (1, 256, 2, 4, 5)
    assert not torch.allclose(a, b, atol=1e-3)
