"""Regions and region scores (xai.targets) against their definitions."""

from __future__ import annotations

import pytest
import torch

from xai.errors import XAIError
from xai.targets import class_scores_map, region_masks, region_score


def test_regions_follow_their_definitions():
    pred = torch.tensor([[[0, 1, 1], [2, 1, 0]]])
    gt = torch.tensor([[[0, 1, 0], [1, 1, 255]]])  # 255: padding or an ignore label, in no class's region
    masks = {r: region_masks(pred, gt, [1], r, 3)[0, 0].bool() for r in ("pred", "gt", "tp", "fp", "fn", "all")}
    assert masks["pred"].tolist() == [[False, True, True], [False, True, False]]
    assert masks["gt"].tolist() == [[False, True, False], [True, True, False]]
    assert masks["tp"].tolist() == [[False, True, False], [False, True, False]]
    assert masks["fp"].tolist() == [[False, False, True], [False, False, False]]
    assert masks["fn"].tolist() == [[False, False, False], [True, False, False]]
    assert masks["all"].tolist() == [[True, True, True], [True, True, False]]
    unlabelled = torch.tensor([[[0, 255, 0], [1, 1, 0]]])  # the predicted root pixel at (0, 1) has no label
    assert region_masks(pred, unlabelled, [1], "pred", 3)[0, 0].bool().tolist() == [
        [False, False, True],
        [False, True, False],
    ]
    assert region_masks(pred, None, [1], "pred", 3)[0, 0].bool().tolist() == [[False, True, True], [False, True, False]]
    with pytest.raises(XAIError, match="needs the ground truth"):
        region_masks(pred, None, [1], "tp", 3)


def test_region_score_sums_the_class_score_over_its_region_and_broadcasts_per_image():
    P = torch.rand(4, 3, 5, 6)
    regions = (torch.rand(2, 2, 5, 6) > 0.5).float()  # 2 images, classes [2, 0]
    index = torch.tensor([1, 0, 1, 1])  # rows of P belong to these images
    s = region_score(P, regions, [2, 0], index)
    for b in range(4):
        for j, c in enumerate([2, 0]):
            assert torch.allclose(s[b, j], (P[b, c] * regions[index[b], j]).sum())


def test_scores_are_softmax_or_the_models_own_output():
    logits = torch.randn(1, 3, 2, 2)
    assert torch.allclose(class_scores_map(logits, "prob", False), torch.softmax(logits, 1))
    assert torch.equal(class_scores_map(logits, "prob", True), logits)  # the head already ends in sigmoid
    assert torch.equal(class_scores_map(logits, "logit", False), logits)
