"""ShapleyCAM against a float64 reference whose Hessian-vector term comes from central differences of
the gradient (no double backpropagation), and its difference from Grad-CAM."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from tests.explainer_reference import shapleycam_reference
from tests.helpers import image_batch, tiny_fpn
from xai import GradCAM, ShapleyCAM
from xai.maps import minmax

LAYER = "encoder.layer3"


def test_matches_the_reference():
    model, x = tiny_fpn(seed=2), image_batch(1, 64, 32, seed=3)
    cam = ShapleyCAM(model, target_layer=LAYER)
    maps = cam(x)
    assert cam.last.stats["backwards"] == 10 and cam.last.weights.shape == (1, 256, 5)
    double = copy.deepcopy(model).double()
    for c in range(5):
        if cam.last.empty[0, c]:
            assert maps[0, c].max() == 0
            continue
        L = shapleycam_reference(double, x, LAYER, c)
        ref = minmax(F.interpolate(L[None, None], size=(64, 32), mode="bilinear")[0, 0])
        assert torch.allclose(maps[0, c], ref, atol=1e-4), (c, (maps[0, c] - ref).abs().max())


def test_the_hessian_term_is_not_zero_under_a_softmax_score():
    """Grad-CAM's weights are ShapleyCAM's first term: the second-order term must change them."""
    model, x = tiny_fpn(seed=2), image_batch(1, 64, 32, seed=3)
    s, g = ShapleyCAM(model, target_layer=LAYER, region="all"), GradCAM(model, target_layer=LAYER, region="all")
    s(x), g(x)
    assert not torch.allclose(s.last.weights, g.last.weights, atol=1e-6, rtol=1e-3)
