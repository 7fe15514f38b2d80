"""The reference maps: a seeded random smooth map and the model's own probability P_c."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch, tiny_convnet, tiny_fpn
from tests.metric_reference import one_thread  # noqa: F401 (autouse fixture)
from xai.errors import XAIError
from xai.metrics.references import probability_maps, random_smooth_maps


def test_random_smooth_maps_are_seeded_scaled_and_smooth():
    a = random_smooth_maps((3, 64, 96), seed=4)
    assert a.shape == (3, 64, 96) and a.dtype == torch.float32
    assert torch.equal(a, random_smooth_maps((3, 64, 96), seed=4))
    assert not torch.equal(a, random_smooth_maps((3, 64, 96), seed=5))
    assert torch.equal(a.amin((1, 2)), torch.zeros(3)) and torch.equal(a.amax((1, 2)), torch.ones(3))
    assert not torch.equal(a[0], a[1])  # each class gets its own map
    # noise at 1/16 of the size, upsampled: neighbours differ far less than independent uniform values (1/3)
    assert float((a[:, :, 1:] - a[:, :, :-1]).abs().mean()) < 0.05
    assert float((a[:, 1:] - a[:, :-1]).abs().max()) < 0.2


def test_random_smooth_maps_of_any_shape_and_bad_shapes():
    assert random_smooth_maps((5, 7)).shape == (5, 7)
    assert random_smooth_maps((2, 2, 9, 9), factor=4).shape == (2, 2, 9, 9)
    with pytest.raises(XAIError):
        random_smooth_maps((8,))


def test_probability_maps_are_the_softmax_of_a_logit_model():
    model = tiny_convnet(classes=3).train()
    x = image_batch(1, 12, 16)
    P = probability_maps(model, x, [2, 0])
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)[0, [2, 0]]
    assert P.shape == (2, 12, 16) and torch.allclose(P, expected, atol=1e-6)
    assert not P.is_inference()
    with pytest.raises(XAIError, match="out of range"):
        probability_maps(model, x, [3])


def test_probability_maps_of_a_model_with_an_activation_are_its_output():
    model = tiny_fpn(activation="sigmoid", seed=1)
    x = image_batch(1, 32, 64)
    with torch.no_grad():
        expected = model(x)[0, [1, 4]]
    assert torch.allclose(probability_maps(model, x[0], [1, 4]), expected, atol=1e-6)
