"""KernelSHAP and LIME over SLIC superpixels: their result is captum's with the region score as target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from tests.helpers import image_batch, tiny_fpn
from xai.errors import XAIError
from xai.maps import minmax
from xai.methods.surrogate import superpixels


def _image():
    """A smooth image with two bright squares, so that SLIC has structure to cut."""
    x = 0.2 * image_batch(1, 64, 64, seed=1)
    x[:, :, 8:24, 8:24] += 1.5
    x[:, :, 36:56, 30:50] -= 1.2
    return x


@pytest.mark.parametrize("name", ["kernel_shap", "lime"])
def test_the_map_is_captums_surrogate_on_the_same_superpixels(name):
    from captum.attr import KernelShap, Lime

    model = tiny_fpn(seed=2)
    x = _image()
    valid = torch.ones(1, 64, 64, dtype=torch.bool)
    valid[:, :, 56:] = False  # padding: its own feature, never perturbed
    cls = xai.KernelSHAP if name == "kernel_shap" else xai.LIME
    cam = cls(model, n_samples=30, n_segments=8, seed=4, batch_size=7, region="all")
    maps = cam(x, valid=valid)
    segments = cam.last.extra["superpixels"][0]
    assert segments.min() == -1 and int(segments.max()) + 1 == cam.last.stats["superpixels"][0] >= 2
    assert bool((segments[:, 56:] == -1).all()) and bool((segments[:, :56] >= 0).all())
    features = segments.clone()
    features[features < 0] = int(features.max()) + 1
    baseline = torch.where(valid[0], torch.zeros_like(x[0]), x[0]).unsqueeze(0)
    for c in (0, 3):
        region = valid[0].float()

        def score(inp, c=c, region=region):
            return (torch.softmax(model(inp), 1)[:, c] * region).sum((1, 2))

        algorithm = KernelShap(score) if name == "kernel_shap" else Lime(score)
        torch.manual_seed(4 + c)
        np.random.seed(4 + c)
        theirs = algorithm.attribute(
            x, baselines=baseline, feature_mask=features.view(1, 1, 64, 64), n_samples=30, perturbations_per_eval=7
        )
        expected = minmax(torch.relu(theirs[0].mean(0)), valid[0])
        assert torch.allclose(maps[0, c], expected, atol=1e-4), (name, c, (maps[0, c] - expected).abs().max())


def test_superpixels_follow_the_image_and_leave_padding_out():
    rgb = np.zeros((40, 40, 3))
    rgb[:, 20:] = 1.0
    valid = np.ones((40, 40), bool)
    valid[:, 36:] = False
    labels = superpixels(rgb, valid, n_segments=4, compactness=10.0)
    assert (labels[:, 36:] == -1).all() and labels[valid].min() == 0
    left, right = set(np.unique(labels[:, :18])), set(np.unique(labels[:, 22:36]))
    assert not left & right  # no superpixel crosses the edge between the halves


def test_bad_sample_counts_are_refused():
    with pytest.raises(XAIError, match="n_samples must be at least 1, got 0"):
        xai.LIME(tiny_fpn(), n_samples=0)
