"""The reference maps: a seeded random smooth map, the model's own probability P_c and the Sobel edge map."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch, tiny_convnet, tiny_fpn
from tests.metric_reference import one_thread  # noqa: F401 (autouse fixture)
from xai.errors import XAIError
from xai.metrics.references import probability_maps, random_smooth_maps, sobel_map


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


def _normalised(rgb: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    return (rgb - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.mark.parametrize(
    "box", [(2, 10, 3, 15), (0, 12, 0, 17), (4, 5, 2, 16), (3, 9, 8, 9)]
)  # letterboxed, no padding, one row, one column
def test_sobel_map_matches_the_formula_with_padding_and_normalisation(box):
    from tests.metric_reference import sobel

    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 12, 17, generator=g) * 1.5  # beyond [0, 1] once de-normalised: clamped
    y0, y1, x0, x1 = box
    valid = torch.zeros(12, 17, dtype=torch.bool)
    valid[y0:y1, x0:x1] = True
    x[0][:, ~valid] = 40.0  # padding of any value makes no edge
    got = sobel_map(x, MEAN, STD, valid)
    expected = sobel(x[0], MEAN, STD, valid)
    assert got.dtype == torch.float32 and got.shape == (12, 17)
    assert torch.allclose(got.double(), expected, atol=1e-6, rtol=0)
    assert float(got[~valid].abs().sum()) == 0
    if (y1 - y0) * (x1 - x0) > 16:
        assert float(got[valid].min()) == 0 and float(got[valid].max()) == 1


def test_sobel_map_min_max_over_the_valid_pixels_only():
    """V with a hole (ignore-labelled pixels): min and max are taken over V, the hole is 0, and the edges
    still come from the photograph's pixels in the hole (the bounding box)."""
    from tests.metric_reference import sobel

    x = torch.randn(3, 9, 11, generator=torch.Generator().manual_seed(5))
    valid = torch.ones(9, 11, dtype=torch.bool)
    valid[3:5, 4:7] = False
    got = sobel_map(x, MEAN, STD, valid)
    assert torch.allclose(got.double(), sobel(x, MEAN, STD, valid), atol=1e-6, rtol=0)
    assert float(got[~valid].abs().max()) == 0 and float(got[valid].max()) == 1


def test_a_vertical_step_edge_gives_a_vertical_line_and_no_edge_at_the_padding():
    rgb = torch.full((3, 10, 12), 0.2)
    rgb[:, :, 6:] = 0.8  # the step between columns 5 and 6
    x = torch.zeros(3, 14, 12)  # 2 rows of padding above and below: the mean colour, unlike the photograph
    x[:, 2:12] = _normalised(rgb, MEAN, STD)
    valid = torch.zeros(14, 12, dtype=torch.bool)
    valid[2:12] = True
    got = sobel_map(x, MEAN, STD, valid)
    expected = torch.zeros(14, 12)
    expected[2:12, 5:7] = 1.0  # |dx| = 4·0.6 on both sides of the step, every row; nothing elsewhere
    assert torch.allclose(got, expected, atol=1e-6)


def test_the_sobel_reference_is_one_map_for_every_class_from_the_runs_normalisation():
    from xai.evaluation.evaluate import MODEL_FREE_BASELINE, REFERENCES, EvaluationSettings, baselines
    from xai.evaluation.measures import Context

    x = torch.randn(1, 3, 8, 10, generator=torch.Generator().manual_seed(2))
    valid = torch.ones(8, 10, dtype=torch.bool)
    valid[:, 8:] = False
    settings = EvaluationSettings(pixel_mean=(0.5, 0.5, 0.5), pixel_std=(0.25, 0.5, 1.0))
    regions = torch.zeros(3, 8, 10, dtype=torch.bool)
    ctx = Context(torch.nn.Identity(), 0, x, None, valid, [0, 3, 4], regions, {}, settings)
    maps = REFERENCES["sobel"].build(ctx)
    assert maps.shape == (3, 8, 10)
    for j in range(3):
        assert torch.equal(maps[j], sobel_map(x, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0), valid))
    assert baselines() == ["sobel"] and REFERENCES["sobel"].role == MODEL_FREE_BASELINE
    with pytest.raises(XAIError, match="one RGB image"):
        sobel_map(torch.zeros(2, 3, 4, 4), MEAN, STD)
