"""GradCAM against the slow per-class reference; one forward pass for every class; state restored."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from tests.reference import GRADIENT_GRID, assert_gradient_method_matches
from xai import GradCAM, ScoreCAM

LAYER = "encoder.layer3"


@pytest.mark.parametrize("score,region,activation", GRADIENT_GRID)
def test_matches_reference(score, region, activation):
    assert_gradient_method_matches(GradCAM, "gradcam", score, region, activation)


class Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_one_forward_for_every_class_and_state_restored(fpn):
    model = Counting(fpn)
    model.train()
    for p in fpn.encoder.parameters():
        p.requires_grad_(False)  # a frozen encoder still gets maps: the graph is cut at the layer
    cam = GradCAM(model, target_layer="inner." + LAYER)
    maps = cam(image_batch(1, 32, 64))
    assert model.calls == 1 and cam.last.stats["backwards"] == 5
    assert maps.shape == (1, 5, 32, 64) and torch.isfinite(maps).all()
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())


def test_same_region_and_prediction_as_scorecam(fpn):
    x = image_batch(1, 32, 64)
    g, s = GradCAM(fpn, target_layer=LAYER), ScoreCAM(fpn, target_layer=LAYER, max_activation_maps=4)
    g(x), s(x)
    assert torch.equal(g.last.prediction, s.last.prediction)
    assert torch.equal(g.last.empty, s.last.empty)
    for c in torch.nonzero(g.last.empty[0]).flatten().tolist():
        assert torch.equal(g.last.maps[0, c], torch.zeros_like(g.last.maps[0, c]))


def test_weights_are_the_spatial_mean_of_the_gradient(fpn):
    """w_kc = mean_ij ∂s_c/∂A_k: N×K×C', one weight per channel and class."""
    cam = GradCAM(fpn, target_layer=LAYER)
    cam(image_batch(2, 32, 64))
    assert cam.last.weights.shape == (2, 256, 5)
