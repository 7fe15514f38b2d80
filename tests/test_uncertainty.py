"""Uncertainty: MC dropout on the model's dropout layers only, the summaries' formulas (against a pass-by-pass
reference with flips), sigmoid heads never softmax-ed, a model without dropout refused, the error AUROC."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import xai
from tests.explainer_reference import flip_summaries_reference
from tests.helpers import image_batch, tiny_convnet, tiny_fpn
from xai.errors import XAIError
from xai.metrics.segmentation import error_auroc


def test_flip_summaries_match_the_pass_by_pass_reference():
    model = tiny_fpn(seed=3)
    x = image_batch(1, 64, 64, seed=2)
    cam = xai.Uncertainty(model, sampling="flips", region="all")
    maps = cam(x)
    mean, var, entropy, mi = flip_summaries_reference(model, x)
    extra = cam.last.extra
    assert torch.allclose(extra["confidence"][0], mean.max(0).values.float(), atol=1e-5)
    assert torch.allclose(extra["entropy"][0], entropy.float(), atol=1e-5)
    assert torch.allclose(extra["mutual_information"][0], mi.float(), atol=1e-5)
    predicted = mean.argmax(0)
    assert torch.allclose(extra["predicted_variance"][0], var.gather(0, predicted[None])[0].float(), atol=1e-6)
    for c in range(5):  # each class's map: the variance of its probability, scaled to [0, 1]
        v = var[c].float()
        expected = (v - v.min()) / (v.max() - v.min())
        assert torch.allclose(maps[0, c], expected, atol=1e-4)
    assert cam.last.stats["passes"] == 4


def test_mc_dropout_varies_only_the_dropout_layers_and_restores_the_model():
    model = tiny_fpn(seed=1)  # smp's FPN has a Dropout2d in its decoder
    model.train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    cam = xai.Uncertainty(model, num_mc_samples=12, batch_size=5, seed=7)
    x = image_batch(2, 64, 64, seed=4)
    maps = cam(x)
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items() if k in stats)  # BN not updated
    assert all(m.training for m in model.modules())  # the caller's modes are back
    assert cam.last.extra["predicted_variance"].max() > 0 and maps.shape == (2, 5, 64, 64)
    assert cam.last.stats["forwards"] == 1 + 2 * 12
    assert torch.equal(xai.Uncertainty(model, num_mc_samples=12, batch_size=5, seed=7)(x), maps)  # seeded
    assert not torch.equal(xai.Uncertainty(model, num_mc_samples=12, batch_size=5, seed=8)(x), maps)


def test_a_sigmoid_head_is_read_as_it_is_and_is_confident_where_it_is_sure():
    model = tiny_fpn(activation="sigmoid", seed=2)
    with torch.no_grad():
        head = dict(model.named_modules())["segmentation_head.0"]
        assert isinstance(head, torch.nn.Conv2d) and head.bias is not None
        head.weight.mul_(0.01)
        head.bias.copy_(torch.tensor([6.0, -6.0, -6.0, -6.0, -6.0]))  # sure: background everywhere
    cam = xai.Uncertainty(model, num_mc_samples=6)
    cam(image_batch(1, 64, 64))
    confidence = cam.last.extra["confidence"]
    assert float(confidence.min()) > 0.99  # a softmax over sigmoid outputs would cap it at e/(e+4) ≈ 0.405
    assert "mutual_information" not in cam.last.extra and cam.last.extra["class_entropy"].shape == (1, 5, 64, 64)
    assert float(cam.last.extra["entropy"].max()) < 0.1


def test_a_model_without_dropout_is_one_line_and_flips_work_instead():
    with pytest.raises(XAIError) as err:
        xai.Uncertainty(tiny_convnet())
    assert "has no dropout layer" in str(err.value) and "--sampling flips" in err.value.cli_message()
    assert xai.Uncertainty(tiny_convnet(), sampling="flips")(image_batch(1, 16, 16)).shape == (1, 3, 16, 16)


def test_error_auroc_is_the_chance_that_an_error_pixel_is_more_uncertain():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (12, 12))
    pred = np.where(rng.random((12, 12)) < 0.7, gt, rng.integers(0, 3, (12, 12)))
    u = rng.random((12, 12)).round(1)  # ties on purpose
    for c in range(3):
        union = (gt == c) | (pred == c)
        err = ((gt == c) != (pred == c))[union]
        vals = u[union]
        pairs = [(a, b) for a, b in itertools.product(vals[err], vals[~err])]
        brute = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
        value = error_auroc(u, gt, pred, c)
        assert value is not None and math.isclose(value, brute, rel_tol=1e-12)
    assert error_auroc(u, gt, gt, 1) is None  # no error: undefined
