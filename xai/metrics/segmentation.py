"""Segmentation metrics of one class on the photograph: TP/FP/FN pixel counts, IoU, Dice, map energy; and,
for photographs without a mask, the prediction's own pixel count and mean probability.

For ground truth G_c and prediction P_c (boolean H×W masks of class c):

    TP = |G_c ∩ P_c|,  FP = |P_c \\ G_c|,  FN = |G_c \\ P_c|     over labelled pixels (gt ≠ IGNORE = 255)
    IoU = TP / (TP + FP + FN),  Dice = 2·TP / (2·TP + FP + FN)        (None when TP + FP + FN = 0)
    energy_in(L, M) = Σ_{p ∈ M} L_p / Σ_p L_p                          (None when Σ_p L_p = 0)
    error AUROC(U) over the pixels of G_c ∪ P_c: the chance that an error pixel (FP ∪ FN) has a higher
        U than a correct one (TP), ties counting half (Mann-Whitney; None without both kinds of pixel)

Without a ground truth (a photograph without a mask, --images) the columns that need one are left out and
the prediction's own stand in for IoU and Dice, with the probability q_p the model gives its predicted
class at pixel p:

    predicted_pixels = |P_c|,  mean_probability = Σ_{p ∈ P_c} q_p / |P_c|   (None when P_c is empty)

Each is declared once in xai.metrics.registry (the columns of summary.csv; error AUROC is also a measure of
--evaluate): a new column is one decorated function, e.g. of every method's map of a class

    MAP_MAX = Measure("map_max", "Largest map value", None, table=SUMMARY)

    @metric(MAP_MAX, per="map", truth="unused")   # truth: it reads no ground truth (xai.metrics.registry)
    def map_max(cam, gt, pred, class_idx):
        return {MAP_MAX: Value(float(cam.max()))}
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..labels import IGNORE
from .registry import SUMMARY, Confidence, Measure, Value, metric, no_confidence


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
    g, p = gt == class_idx, (pred == class_idx) & (gt != IGNORE)  # an ignore-labelled pixel is no error
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


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts).astype(np.float64)
    return (ends - (counts - 1) / 2)[inverse.reshape(-1)]


def error_auroc(uncertainty: np.ndarray, gt: np.ndarray, pred: np.ndarray, class_idx: int) -> float | None:
    """How well the map tells the class's error pixels (FP ∪ FN) from its correct ones (TP): the AUROC."""
    g, p = np.asarray(gt) == class_idx, (np.asarray(pred) == class_idx) & (np.asarray(gt) != IGNORE)
    union = g | p
    errors = (g != p)[union]
    n_err, n_ok = int(errors.sum()), int((~errors).sum())
    if n_err == 0 or n_ok == 0:
        return None
    ranks = _average_ranks(np.asarray(uncertainty, dtype=np.float64)[union])
    return float((ranks[errors].sum() - n_err * (n_err + 1) / 2) / (n_err * n_ok))


IOU = Measure("iou", "IoU", "higher", table=SUMMARY)
DICE = Measure("dice", "Dice", "higher", table=SUMMARY)
COUNTS = (
    Measure("tp", "True positives (pixels)", None, table=SUMMARY),
    Measure("fp", "False positives (pixels)", None, table=SUMMARY),
    Measure("fn", "False negatives (pixels)", None, table=SUMMARY),
)
PREDICTED_PIXELS = Measure("predicted_pixels", "Predicted pixels", None, table=SUMMARY, digits=0)
MEAN_PROBABILITY = Measure("mean_probability", "Mean probability", "higher", table=SUMMARY)
ENERGY_IN_GT = Measure("energy_in_gt", "Energy in the ground truth", "higher", table=SUMMARY)
ENERGY_IN_PRED = Measure("energy_in_pred", "Energy in the prediction", "higher", table=SUMMARY)
ERROR_AUROC = Measure("error_auroc", "Error AUROC", "higher", table=(SUMMARY, "main"))
ZERO_MAP = "the map is 0 everywhere"


@metric(IOU, DICE, *COUNTS, per="class")
def class_metrics(
    gt: np.ndarray, pred: np.ndarray, class_idx: int, confidence: Confidence = no_confidence
) -> dict[Measure, Value]:
    """The prediction's quality for one class: iou, dice, tp, fp, fn (confidence: unused)."""
    counts = error_counts(gt, pred, class_idx)
    iou, dice = iou_dice(counts)
    absent = "the class is in neither the ground truth nor the prediction"
    return {IOU: Value(iou, absent), DICE: Value(dice, absent), **{m: Value(counts[m.name]) for m in COUNTS}}


def mean_probability(pred: np.ndarray, confidence: np.ndarray | None, class_idx: int) -> float | None:
    """The mean probability of class_idx over its predicted pixels (confidence: H×W, the probability of the
    predicted class); None without pixels or without probabilities."""
    region = _ids(pred, "pred") == class_idx
    if confidence is None or not region.any():
        return None
    if np.shape(confidence) != region.shape:
        raise ValueError(f"confidence has shape {np.shape(confidence)} but pred has {region.shape}")
    return float(np.asarray(confidence)[region].mean(dtype=np.float64))


@metric(PREDICTED_PIXELS, MEAN_PROBABILITY, per="class", truth="absent")
def prediction_metrics(
    gt: np.ndarray | None, pred: np.ndarray, class_idx: int, confidence: Confidence = no_confidence
) -> dict[Measure, Value]:
    """What the prediction says of one class on a photograph without a mask: its predicted pixels and their
    mean probability (gt: None)."""
    pixels = int(np.count_nonzero(_ids(pred, "pred") == class_idx))
    reason = "the class is not predicted" if pixels == 0 else "the model's probabilities are unknown"
    return {
        PREDICTED_PIXELS: Value(pixels),
        MEAN_PROBABILITY: Value(mean_probability(pred, confidence() if pixels else None, class_idx), reason),
    }


@metric(ENERGY_IN_GT, per="map")
def energy_in_truth(cam: np.ndarray, gt: np.ndarray, pred: np.ndarray, class_idx: int) -> dict[Measure, Value]:
    """The share of one class's map inside the ground truth of the class."""
    return {ENERGY_IN_GT: Value(energy_in(cam, gt == class_idx), ZERO_MAP)}


@metric(ENERGY_IN_PRED, per="map", truth="unused")
def energy_in_prediction(
    cam: np.ndarray, gt: np.ndarray | None, pred: np.ndarray, class_idx: int
) -> dict[Measure, Value]:
    """The share of one class's map inside the prediction of the class (with or without a ground truth)."""
    return {ENERGY_IN_PRED: Value(energy_in(cam, pred == class_idx), ZERO_MAP)}


@metric(ERROR_AUROC, per="map", family="uncertainty")
def uncertainty_metrics(cam: np.ndarray, gt: np.ndarray, pred: np.ndarray, class_idx: int) -> dict[Measure, Value]:
    """Whether an uncertainty map points at the prediction's mistakes of one class: the error AUROC (a
    summary.csv column of the uncertainty family's methods, and a measure of --evaluate)."""
    return {ERROR_AUROC: Value(error_auroc(cam, gt, pred, class_idx), "no error or no correct pixel")}
