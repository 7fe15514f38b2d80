"""Metrics: segmentation quality of the prediction, and (xai.metrics.faithfulness) of explanations; every
column of summary.csv and measure of --evaluate is declared once in xai.metrics.registry."""

from .registry import Measure, Value, measures, metric, metrics, summary_columns
from .segmentation import (
    ERROR_AUROC,
    class_metrics,
    energy_in,
    error_auroc,
    error_counts,
    iou_dice,
    map_metrics,
    uncertainty_metrics,
)

__all__ = [
    "ERROR_AUROC",
    "Measure",
    "Value",
    "class_metrics",
    "energy_in",
    "error_auroc",
    "error_counts",
    "iou_dice",
    "map_metrics",
    "measures",
    "metric",
    "metrics",
    "summary_columns",
    "uncertainty_metrics",
]
