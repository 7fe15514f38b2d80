"""FullGrad against a channel-by-channel reference written from the definition (tests/explainer_reference.py)."""

from __future__ import annotations

import pytest
import torch

import xai
from tests.explainer_reference import fullgrad_reference
from tests.helpers import image_batch, tiny_fpn
from xai.methods.fullgrad import bias_layers


@pytest.mark.parametrize("region,images,pairs", [("pred", 2, 1), ("all", 1, 2)])
def test_fullgrad_matches_the_reference(region, images, pairs):
    """Every class from one call on a batch; the first `pairs` classes with a region of each image
    against the reference (one image and class at a time), to 1e-5."""
    model, x = tiny_fpn(seed=2), image_batch(images, 64, 32, seed=3)
    cam = xai.FullGrad(model, region=region)
    maps = cam(x)
    assert maps.shape == (images, 5, 64, 32) and cam.last.stats["backwards"] == 5
    for n in range(images):
        assert all(maps[n, c].abs().max() == 0 for c in range(5) if cam.last.empty[n, c])
        for c in [c for c in range(5) if not cam.last.empty[n, c]][:pairs]:
            ref = fullgrad_reference(model, x[n : n + 1], c, region)
            assert torch.allclose(maps[n, c], ref, atol=1e-5), (n, c, (maps[n, c] - ref).abs().max())


def test_the_biases_are_the_convolutions_and_the_batch_norms_implicit_ones():
    """resnet18: 20 batch norms; the FPN: p5, three lateral 1×1 convolutions and the head's convolution
    have biases; the segmentation blocks' convolutions have none (their GroupNorm is left out). A batch
    norm in eval mode is γ z / √(σ² + ε) plus its implicit bias."""
    model = tiny_fpn(seed=2)
    layers = bias_layers(model)
    kinds = [type(m).__name__ for m, _ in layers]
    assert kinds.count("BatchNorm2d") == 20 and kinds.count("Conv2d") == 5 and len(kinds) == 25
    bn = model.get_submodule("encoder.bn1")
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.running_var is not None
    b = next(b for m, b in layers if m is bn)
    z = torch.randn(1, 64, 4, 4)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps))[None, :, None, None]
    with torch.no_grad():
        assert torch.allclose(bn(z), scale * z + b[None, :, None, None], atol=1e-5)


def test_fullgrad_leaves_the_model_as_it_was():
    model, x = tiny_fpn(seed=2), image_batch(1, 64, 32, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xai.FullGrad(model)(x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())
