"""Metrics: segmentation quality of the prediction, and (xai.metrics.faithfulness) of explanations."""
from .segmentation import energy_in, error_counts, iou_dice

__all__ = ["energy_in", "error_counts", "iou_dice"]
