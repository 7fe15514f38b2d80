"""Eigen-CAM against a numpy projection on the first principal component; one map for every class."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import xai
from tests.explainer_reference import eigencam_reference
from tests.helpers import image_batch, tiny_fpn
from xai.maps import minmax


def _activations(model, x, layer):
    store: dict[str, torch.Tensor] = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    h.remove()
    return store["a"]


def test_matches_the_reference_and_is_class_agnostic():
    model = tiny_fpn(seed=3)
    x = image_batch(2, 64, 32, seed=1)
    cam = xai.EigenCAM(model, target_layer="encoder.layer3", region="all")
    maps = cam(x)
    acts = _activations(model, x, "encoder.layer3")
    for n in range(2):
        ref = minmax(F.interpolate(eigencam_reference(acts[n])[None, None], size=(64, 32), mode="bilinear")[0, 0])
        for c in range(5):
            assert torch.allclose(maps[n, c], ref, atol=1e-4), (n, c, (maps[n, c] - ref).abs().max())
    assert not xai.EigenCAM.class_specific and xai.GradCAM.class_specific


def test_the_sign_follows_where_the_layer_is_active(monkeypatch):
    """SVD leaves the component's sign open; the map must mark where the activations are, not the rest,
    whichever sign the SVD returns (−U, S, −Vᵀ is the same decomposition)."""

    class Bright(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Identity()

        def forward(self, x):
            return self.features(x)[:, :2]

    x = torch.zeros(1, 3, 16, 16)
    x[:, :, 4:8, 4:8] = torch.tensor([3.0, 1.0, 2.0]).view(1, 3, 1, 1)  # one active square
    svd = torch.linalg.svd
    for sign in (1.0, -1.0):

        def flipped(a, sign=sign, **kw):
            u, s, vh = svd(a, **kw)
            return u * sign, s, vh * sign

        monkeypatch.setattr(torch.linalg, "svd", flipped)
        maps = xai.EigenCAM(Bright(), target_layer="features", region="all")(x)
        assert maps[0, 0, 4:8, 4:8].min() == 1.0 and maps[0, 0].sum() == 16  # the square, and nothing else
