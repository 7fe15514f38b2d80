"""GradCAM against the slow per-class reference; one forward pass for every class; state restored."""
from __future__ import annotations

import pytest
import torch

from xai import GradCAM, ScoreCAM

from conftest import gt_batch, image_batch, tiny_fpn
from reference import gradcam_reference

LAYER = "encoder.layer3"


@pytest.mark.parametrize("score,region,activation", [
    ("prob", "pred", None), ("logit", "all", None), ("prob", "fn", None), ("logit", "gt", "sigmoid"),
    ("prob", "tp", "sigmoid"),
])
def test_matches_reference(score, region, activation):
    model = tiny_fpn(activation=activation, seed=2)
    x, gt = image_batch(2, 64, 32, seed=3), gt_batch(2, 64, 32, seed=4)
    cam = GradCAM(model, target_layer=LAYER, score=score, region=region)
    maps = cam(x, gt=gt)
    assert maps.shape == (2, 5, 64, 32)
    for n in range(2):
        for c in range(5):
            ref = gradcam_reference(model, x[n:n + 1], LAYER, c, score=score, region=region, gt=gt[n:n + 1],
                                    has_act=activation is not None)
            assert torch.allclose(maps[n, c], ref, atol=1e-4), (n, c, (maps[n, c] - ref).abs().max())


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
