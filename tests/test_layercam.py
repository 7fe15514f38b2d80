"""LayerCAM against the element-wise reference, a known answer, and fine maps at a shallow layer."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from tests.linear_head import LinearHead, activations, minmax
from tests.reference import GRADIENT_GRID, assert_gradient_method_matches
from xai import GradCAM, LayerCAM


@pytest.mark.parametrize("score,region,activation", GRADIENT_GRID)
def test_matches_reference(score, region, activation):
    assert_gradient_method_matches(LayerCAM, "layercam", score, region, activation)


def test_linear_head_keeps_only_positive_weights():
    model = LinearHead().eval()
    x = image_batch(1, 12, 20)
    maps = LayerCAM(model, target_layer="features.1", score="logit", region="all")(x)
    A, W = activations(model, x)[0], model.head.weight[:, :, 0, 0].detach()
    for c in range(3):
        assert torch.allclose(maps[0, c], minmax(torch.relu((torch.relu(W[c])[:, None, None] * A).sum(0))), atol=1e-5)


def test_shallow_layer_maps_have_its_resolution(fpn):
    """At encoder.layer1 (H/4) LayerCAM's map varies cell by cell: more distinct values than at layer4."""
    x = image_batch(1, 64, 64, seed=7)
    shallow = LayerCAM(fpn, target_layer="encoder.layer1")(x, classes=[1])
    deep = GradCAM(fpn, target_layer="encoder.layer4")(x, classes=[1])
    assert shallow[0, 0].unique().numel() > deep[0, 0].unique().numel()
