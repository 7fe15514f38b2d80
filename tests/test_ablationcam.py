"""Ablation-CAM against channel-by-channel ablation; the head alone at smp's decoder equals the full model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import xai
from tests.explainer_reference import ablation_weights_reference
from tests.helpers import CountingModel, image_batch, tiny_fpn
from xai.maps import minmax


def test_matches_the_reference_at_an_encoder_layer():
    model = tiny_fpn(seed=4)
    x = image_batch(1, 64, 32, seed=2)
    cam = xai.AblationCAM(model, target_layer="encoder.layer3", batch_size=13)
    maps = cam(x, classes=[1, 3])
    assert not cam.last.empty.any()
    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    for j, c in enumerate([1, 3]):
        w, acts = ablation_weights_reference(model, x, "encoder.layer3", c, (pred == c).float())
        assert torch.allclose(cam.last.weights[0, :, j], w.float(), atol=1e-4)
        L = torch.relu((w.float()[:, None, None] * acts).sum(0))
        ref = minmax(F.interpolate(L[None, None], size=(64, 32), mode="bilinear", align_corners=False)[0, 0])
        assert torch.allclose(maps[0, j], ref, atol=1e-4)
    assert not cam.last.stats["cached_features"]


def test_at_the_decoder_only_the_head_runs_and_the_maps_are_the_same():
    model = CountingModel(tiny_fpn(seed=5))
    x = image_batch(1, 64, 64, seed=3)
    fast = xai.AblationCAM(model.inner, target_layer="decoder")
    full = xai.AblationCAM(model, target_layer="inner.decoder", batch_size=32)  # another name: the whole model runs
    a, b = fast(x), full(x)
    assert fast.last.stats["cached_features"] and not full.last.stats["cached_features"]
    assert model.batches[1:] == [32]  # the decoder's 32 channels, each through the whole model
    assert torch.allclose(a, b, atol=1e-4)
    slow = xai.AblationCAM(model.inner, target_layer="decoder", remainder="full")
    assert torch.allclose(slow(x), a, atol=1e-4) and not slow.last.stats["cached_features"]
