"""GradCAMPlusPlus against the per-pixel reference of the paper's closed form, and a known answer."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from tests.linear_head import LinearHead, activations, minmax
from tests.reference import GRADIENT_GRID, assert_gradient_method_matches
from xai import GradCAMPlusPlus


@pytest.mark.parametrize("score,region,activation", GRADIENT_GRID)
def test_matches_reference(score, region, activation):
    assert_gradient_method_matches(GradCAMPlusPlus, "gradcampp", score, region, activation)


def test_known_answer_on_a_linear_head():
    """∂s_c/∂A_k = W_ck everywhere: w_kc = hw · ReLU(W_ck) / (2 + W_ck Σ_ab A_k,ab)."""
    model = LinearHead().eval()
    x = image_batch(1, 12, 20)
    maps = GradCAMPlusPlus(model, target_layer="features.1", score="logit", region="all")(x)
    A, W = activations(model, x)[0], model.head.weight[:, :, 0, 0].detach()
    hw = A.shape[-2] * A.shape[-1]
    for c in range(3):
        w = torch.where(W[c] > 0, hw * W[c] / (2 + W[c] * A.sum((1, 2))), torch.zeros_like(W[c]))
        expected = minmax(torch.relu((w[:, None, None] * A).sum(0)))
        assert torch.allclose(maps[0, c], expected, atol=1e-5)


def test_only_positive_gradients_count(fpn):
    cam = GradCAMPlusPlus(fpn, target_layer="encoder.layer3")
    cam(image_batch(1, 32, 64))
    assert cam.last.weights.shape == (1, 256, 5) and (cam.last.weights >= 0).all()
