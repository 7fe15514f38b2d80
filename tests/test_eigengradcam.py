"""Eigen-Grad-CAM and Seg-Eigen-CAM against numpy projections of G ⊙ A and |G| ⊙ A on their first
principal component, class by class, and their sign rules whichever sign the SVD returns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.explainer_reference import eigen_projection_reference
from tests.helpers import gt_batch, image_batch, tiny_fpn
from tests.reference import _gradients
from xai import EigenGradCAM, SegEigenCAM
from xai.maps import minmax

LAYER = "encoder.layer2"  # 8×4 cells at 64×32


@pytest.mark.parametrize(
    "cls,combine,sign,score,region",
    [
        (EigenGradCAM, lambda g, a: g * a, "sum", "prob", "pred"),
        (SegEigenCAM, lambda g, a: g.abs() * a, "magnitude", "logit", "gt"),
    ],
)
def test_matches_the_reference(cls, combine, sign, score, region):
    model = tiny_fpn(seed=2)
    x, gt = image_batch(2, 64, 32, seed=3), gt_batch(2, 64, 32, seed=4)
    cam = cls(model, target_layer=LAYER, score=score, region=region)
    maps = cam(x, gt=gt)
    assert cam.last.weights.shape == (2, 128, 5) and cam.last.stats["backwards"] == 5
    for n in range(2):
        for c in range(5):
            A, G = _gradients(model, x[n : n + 1], LAYER, c, score, region, gt[n : n + 1], False)
            if G.abs().max() == 0:  # an empty region: no score, an all-zero map
                assert maps[n, c].max() == 0
                continue
            L = eigen_projection_reference(combine(G, A), sign)
            ref = minmax(F.interpolate(L[None, None], size=(64, 32), mode="bilinear")[0, 0])
            assert torch.allclose(maps[n, c], ref, atol=1e-4), (n, c, (maps[n, c] - ref).abs().max())


@pytest.mark.parametrize("cls", [EigenGradCAM, SegEigenCAM])
def test_the_sign_does_not_depend_on_the_svd(cls, monkeypatch):
    """−U, S, −Vᵀ is the same decomposition: the maps must not change with it."""
    model, x = tiny_fpn(seed=2), image_batch(1, 64, 32, seed=3)
    svd = torch.linalg.svd
    maps = []
    for s in (1.0, -1.0):

        def flipped(a, s=s, **kw):
            u, sv, vh = svd(a, **kw)
            return u * s, sv, vh * s

        monkeypatch.setattr(torch.linalg, "svd", flipped)
        maps.append(cls(model, target_layer=LAYER, region="all")(x))
    assert maps[0].max() == 1 and torch.equal(maps[0], maps[1])


def test_the_two_signs_differ_where_they_should():
    """Eigen-Grad-CAM's map follows Σ_k G ⊙ A (HiResCAM's); Seg-Eigen-CAM's has its largest value positive,
    and weights the activations by |G|: different maps of the same class."""
    model, x = tiny_fpn(seed=2), image_batch(1, 64, 32, seed=3)
    a = EigenGradCAM(model, target_layer=LAYER, region="all")(x)
    b = SegEigenCAM(model, target_layer=LAYER, region="all")(x)
    assert not torch.allclose(a, b, atol=1e-2)
