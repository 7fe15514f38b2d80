"""Metrics: segmentation quality of the prediction, and (xai.metrics.faithfulness) of explanations; every
column of summary.csv and measure of --evaluate is declared once in xai.metrics.registry."""

from .registry import Measure, Value, measures, metric, metrics, summary_columns
from .segmentation import (
    ERROR_AUROC,
    class_metrics,
    energy_in,
    energy_in_prediction,
    energy_in_truth,
    error_auroc,
    error_counts,
    iou_dice,
    mean_probability,
    prediction_metrics,
    uncertainty_metrics,
)

__all__ = [
    "ERROR_AUROC",
    "Measure",
    "Value",
    "class_metrics",
    "energy_in",
    "energy_in_prediction",
    "energy_in_truth",
    "error_auroc",
    "error_counts",
    "iou_dice",
    "mean_probability",
    "measures",
    "metric",
    "metrics",
    "prediction_metrics",
    "summary_columns",
    "uncertainty_metrics",
]
