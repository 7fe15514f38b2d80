"""Metrics: segmentation quality of the prediction, and (xai.metrics.faithfulness) of explanations."""

from .segmentation import (
    CLASS_METRICS,
    FAMILY_METRICS,
    MAP_METRICS,
    class_metrics,
    energy_in,
    error_auroc,
    error_counts,
    iou_dice,
    map_metrics,
)

__all__ = [
    "CLASS_METRICS",
    "FAMILY_METRICS",
    "MAP_METRICS",
    "class_metrics",
    "energy_in",
    "error_auroc",
    "error_counts",
    "iou_dice",
    "map_metrics",
]
