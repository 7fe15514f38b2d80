"""Energy pointing game, pointing game and relevance rank accuracy: known answers and loop references."""

from __future__ import annotations

import math

import pytest
import torch

from tests import metric_reference as ref
from tests.metric_reference import one_thread  # noqa: F401 (autouse fixture)
from xai.errors import XAIError
from xai.metrics.localisation import NO_TRUTH, ZERO_MAP, energy_pointing_game, pointing_game, relevance_rank_accuracy

METRICS = (energy_pointing_game, pointing_game, relevance_rank_accuracy)


def _valid() -> torch.Tensor:
    valid = torch.ones(10, 14, dtype=torch.bool)
    valid[:, 11:] = False
    return valid


def test_a_map_equal_to_the_truth_scores_1_and_a_disjoint_map_0():
    valid = _valid()
    gt = torch.zeros(10, 14, dtype=torch.bool)
    gt[2:5, 3:8] = True
    elsewhere = torch.zeros(10, 14)
    elsewhere[6:9, 1:10] = 0.7
    for metric in METRICS:
        assert metric(gt.float(), gt, valid).value == 1.0 and metric(gt.float(), gt, valid).reason is None
        assert metric(elsewhere, gt, valid).value == 0.0


def test_padding_is_left_out():
    valid = _valid()
    gt = torch.zeros(10, 14, dtype=torch.bool)
    gt[0:2, 0:2] = True
    cam = torch.zeros(10, 14)
    cam[0:2, 0:2] = 0.5
    cam[:, 11:] = 9.0  # large values on padding, and ground truth there, count for nothing
    gt_on_padding = gt.clone()
    gt_on_padding[:, 11:] = True
    for truth in (gt, gt_on_padding):
        assert energy_pointing_game(cam, truth, valid).value == 1.0
        assert pointing_game(cam, truth, valid).value == 1.0
        assert relevance_rank_accuracy(cam, truth, valid).value == 1.0
    assert energy_pointing_game(cam, gt).value < 0.1  # without valid, every pixel counts
    assert pointing_game(cam, gt).value == 0.0


def test_partial_values_by_hand():
    valid = torch.ones(2, 3, dtype=torch.bool)
    gt = torch.tensor([[True, True, False], [False, False, False]])
    cam = torch.tensor([[0.5, 0.0, 1.0], [0.25, 0.25, 0.0]])
    assert math.isclose(energy_pointing_game(cam, gt, valid).value, 0.5 / 2.0)
    assert pointing_game(cam, gt, valid).value == 0.0  # the maximum (1.0) lies outside GT
    assert relevance_rank_accuracy(cam, gt, valid).value == 0.5  # K = 2: top-2 are 1.0 (out) and 0.5 (in)


def test_several_maximal_pixels_hit_if_any_lies_in_the_truth():
    valid = torch.ones(4, 4, dtype=torch.bool)
    gt = torch.zeros(4, 4, dtype=torch.bool)
    gt[3, 3] = True
    cam = torch.full((4, 4), 0.2)
    cam[0, 0] = cam[3, 3] = 1.0
    assert pointing_game(cam, gt, valid).value == 1.0
    flat = torch.full((4, 4), 0.3)  # every pixel maximal
    assert pointing_game(flat, gt, valid).value == 1.0
    assert relevance_rank_accuracy(flat, gt, valid).value == 0.0  # ties in raster order: (0, 0) first


def test_empty_truth_or_zero_map_give_nan_with_a_reason():
    valid = _valid()
    gt = torch.zeros(10, 14, dtype=torch.bool)
    gt[:, 12] = True  # only on padding: empty on the photograph
    for metric in METRICS:
        res = metric(torch.rand(10, 14), gt, valid)
        assert math.isnan(res.value) and res.reason == NO_TRUTH
    gt[1, 1] = True
    cam = torch.zeros(10, 14)
    cam[:, 12] = 1.0  # non-zero on padding only
    for metric in METRICS:
        res = metric(cam, gt, valid)
        assert math.isnan(res.value) and res.reason == ZERO_MAP


def test_random_maps_with_ties_match_the_loop_references():
    valid = _valid()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        cam = (torch.rand(10, 14, generator=g) * 5).floor() / 4
        gt = torch.rand(10, 14, generator=g) < 0.3
        assert math.isclose(energy_pointing_game(cam, gt, valid).value, ref.energy(cam, gt, valid), rel_tol=1e-9)
        assert pointing_game(cam, gt, valid).value == ref.pointing(cam, gt, valid)
        assert relevance_rank_accuracy(cam, gt, valid).value == ref.rank_accuracy(cam, gt, valid)


def test_bad_maps_are_refused():
    gt = torch.ones(4, 4, dtype=torch.bool)
    with pytest.raises(XAIError, match="≥ 0"):
        energy_pointing_game(-torch.ones(4, 4), gt)
    with pytest.raises(XAIError, match="same size"):
        pointing_game(torch.ones(4, 5), gt)
