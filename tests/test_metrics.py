"""Segmentation metrics (xai.metrics): TP/FP/FN counts, IoU and Dice of one class."""

from __future__ import annotations

import numpy as np
import pytest

from xai.metrics import error_counts, iou_dice


def _squares():
    gt = np.zeros((20, 20), np.uint8)
    pred = np.zeros((20, 20), np.uint8)
    gt[4:12, 4:12] = 1  # 8x8 = 64 px
    pred[6:14, 6:14] = 1  # shifted by (2, 2): overlap 6x6 = 36
    return gt, pred


def test_error_counts_exact():
    gt, pred = _squares()
    assert error_counts(gt, pred, 1) == {"tp": 36, "fp": 28, "fn": 28}
    assert error_counts(gt, pred, 0) == {"tp": 400 - 92, "fp": 28, "fn": 28}
    assert error_counts(gt, pred, 3) == {"tp": 0, "fp": 0, "fn": 0}
    iou, dice = iou_dice(error_counts(gt, pred, 1))
    assert iou == pytest.approx(36 / 92) and dice == pytest.approx(72 / 128)
    assert iou_dice({"tp": 0, "fp": 0, "fn": 0}) == (None, None)


def test_error_counts_validation():
    with pytest.raises(ValueError):
        error_counts(np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8), 1)
    with pytest.raises(ValueError):
        error_counts(None, np.zeros((4, 4), np.uint8), 1)  # type: ignore[arg-type]  # no ground truth must be refused
    with pytest.raises(ValueError):
        error_counts(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), 1)
