"""Segmentation metrics of one class on the photograph: TP/FP/FN pixel counts, IoU, Dice, map energy.

For ground truth G_c and prediction P_c (boolean H×W masks of class c):

    TP = |G_c ∩ P_c|,  FP = |P_c \\ G_c|,  FN = |G_c \\ P_c|
    IoU = TP / (TP + FP + FN),  Dice = 2·TP / (2·TP + FP + FN)        (None when TP + FP + FN = 0)
    energy_in(L, M) = Σ_{p ∈ M} L_p / Σ_p L_p                          (None when Σ_p L_p = 0)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _ids(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an H×W array of class ids, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got {a.dtype}")
    return a


def error_counts(gt: np.ndarray, pred: np.ndarray, class_idx: int) -> dict[str, int]:
    """Pixel counts of one class: tp (in gt and pred), fp (pred only), fn (gt only)."""
    if gt is None:
        raise ValueError("error_counts needs a ground truth (gt is None)")
    gt, pred = _ids(gt, "gt"), _ids(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"pred has shape {pred.shape} but gt has {gt.shape}")
    g, p = gt == class_idx, pred == class_idx
    return {
        "tp": int(np.count_nonzero(g & p)),
        "fp": int(np.count_nonzero(p & ~g)),
        "fn": int(np.count_nonzero(g & ~p)),
    }


def iou_dice(counts: Mapping[str, int]) -> tuple[float | None, float | None]:
    """IoU and Dice from error_counts(); (None, None) when the class is absent from gt and pred."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    if tp + fp + fn == 0:
        return None, None
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def energy_in(cam: np.ndarray, mask: np.ndarray) -> float | None:
    """Share of the map's total value inside mask; None for an all-zero map."""
    total = float(cam.sum(dtype=np.float64))
    if total <= 0:
        return None
    return float(cam[mask].sum(dtype=np.float64)) / total


def class_metrics(gt: np.ndarray, pred: np.ndarray, class_idx: int) -> dict[str, float | int | None]:
    """The prediction's quality for one class: tp, fp, fn, iou, dice."""
    counts = error_counts(gt, pred, class_idx)
    iou, dice = iou_dice(counts)
    return {"iou": iou, "dice": dice, **counts}


def map_metrics(cam: np.ndarray | None, gt: np.ndarray, pred: np.ndarray, class_idx: int) -> dict[str, float | None]:
    """Where one class's map puts its energy: inside the ground truth, inside the prediction."""
    if cam is None:
        return {"energy_in_gt": None, "energy_in_pred": None}
    return {"energy_in_gt": energy_in(cam, gt == class_idx), "energy_in_pred": energy_in(cam, pred == class_idx)}


# A summary row per sample and class: CLASS_METRICS of the prediction, then MAP_METRICS per method
# (columns "<method>_<name>"). A new metric is one function appended here.
CLASS_METRICS = [class_metrics]
MAP_METRICS = [map_metrics]
