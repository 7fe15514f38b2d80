"""HiResCAM against the element-wise reference, and the known answer of a linear head."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from tests.linear_head import LinearHead, activations, minmax
from tests.reference import GRADIENT_GRID, assert_gradient_method_matches
from xai import GradCAM, HiResCAM


@pytest.mark.parametrize("score,region,activation", GRADIENT_GRID)
def test_matches_reference(score, region, activation):
    assert_gradient_method_matches(HiResCAM, "hirescam", score, region, activation)


def test_linear_head_gives_the_logit_map_like_gradcam():
    model = LinearHead().eval()
    x = image_batch(1, 12, 20)
    hires = HiResCAM(model, target_layer="features.1", score="logit", region="all")(x)
    grad = GradCAM(model, target_layer="features.1", score="logit", region="all")(x)
    bias = model.head.bias
    assert bias is not None
    logits = model.head(activations(model, x)).detach() - bias.detach()[None, :, None, None]
    expected = minmax(torch.relu(logits))
    assert torch.allclose(hires, expected, atol=1e-5) and torch.allclose(grad, expected, atol=1e-5)


def test_weights_are_element_wise(fpn):
    cam = HiResCAM(fpn, target_layer="encoder.layer3")
    cam(image_batch(2, 32, 64))
    assert cam.last.weights.shape == (2, 256, 2, 4, 5)  # N×K×h×w×C'
