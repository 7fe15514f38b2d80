"""The captum attributions: their result is captum's, with the region score of each class as the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from tests.helpers import image_batch, tiny_fpn
from xai.maps import minmax
from xai.methods import get_method


def _region_score(model, x, c):
    with torch.no_grad():
        region = (model(x).argmax(1)[0] == c).float()
    return lambda inp: (torch.softmax(model(inp), 1)[:, c] * region).sum((1, 2))


def _theirs(name, model, x, c, seed):
    from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Saliency

    forward = _region_score(model, x, c)
    inp = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    np.random.seed(seed)
    if name == "integrated_gradients":
        return IntegratedGradients(forward).attribute(inp, baselines=torch.zeros_like(x), n_steps=8)
    if name == "gradient_shap":
        black = (-torch.tensor((0.485, 0.456, 0.406)) / torch.tensor((0.229, 0.224, 0.225))).view(1, 3, 1, 1)
        baselines = torch.cat([torch.zeros_like(x), black.expand_as(x)])
        return GradientShap(forward).attribute(inp, baselines=baselines, n_samples=6, stdevs=0.1)
    if name == "saliency":
        return Saliency(forward).attribute(inp, abs=False)
    return NoiseTunnel(Saliency(forward)).attribute(inp, nt_type="smoothgrad", nt_samples=5, stdevs=0.15, abs=False)


QUICK = {
    "integrated_gradients": {"steps": 8},
    "gradient_shap": {"shap_samples": 6},
    "saliency": {},
    "smoothgrad": {"nt_samples": 5},
}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_the_map_is_captums_attribution_of_the_region_score(name):
    model = tiny_fpn(seed=6)
    x = image_batch(1, 64, 32, seed=7)
    cam = get_method(name).cls(model, seed=3, **QUICK[name])
    maps = cam(x, classes=[3, 4])  # the classes this model predicts on x
    assert cam.last is not None and not cam.last.empty.any()
    for j, c in enumerate([3, 4]):
        theirs = _theirs(name, model, x, c, seed=3 + j)
        expected = minmax(torch.relu(theirs.detach()[0].sum(0)))
        assert torch.allclose(maps[0, j], expected, atol=1e-4), (name, c, (maps[0, j] - expected).abs().max())


def test_absolute_seeded_and_the_global_generators_left_alone():
    model = tiny_fpn(seed=6)
    x = image_batch(1, 64, 32, seed=7)
    state = torch.random.get_rng_state()
    first = xai.SmoothGrad(model, nt_samples=4, seed=1)(x)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(xai.SmoothGrad(model, nt_samples=4, seed=1)(x), first)
    assert not torch.equal(xai.SmoothGrad(model, nt_samples=4, seed=2)(x), first)
    with torch.no_grad():
        present = int(model(x).argmax(1).flatten().mode().values)  # a class with a region to explain
    signed = xai.Saliency(model)
    signed(x, classes=[present])
    absolute = xai.Saliency(model, absolute=True)
    absolute(x, classes=[present])
    a, s = absolute.last.raw, signed.last.raw  # |Σ a| and ReLU(Σ a): equal where the sum is positive
    assert torch.allclose(torch.where(s > 0, a, s), s, atol=1e-6) and int((a > 0).sum()) > int((s > 0).sum())
