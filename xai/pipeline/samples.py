"""What the explain stage carries: a preprocessed sample, one that could not be read, an explained one."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import Letterbox

__all__ = ["Explained", "FailedSample", "Sample", "as_sample"]


@dataclass
class Sample:
    """A sample of the split as the model sees it (image: 3×H×W normalised, mask: H×W ids with padding and
    ignore labels IGNORE) and as it was read (rgb and gt on the photograph); letterbox maps between them.
    A photograph without a mask (--images) has mask and gt None, and the path it came from in source."""

    index: int
    name: str
    image: torch.Tensor
    mask: torch.Tensor | None
    letterbox: Letterbox
    rgb: np.ndarray
    gt: np.ndarray | None
    source: str | None = None


@dataclass
class FailedSample:
    """A sample that could not be read: why (one line, option names as flags); its photograph's path with
    --images."""

    index: int
    name: str
    error: str
    source: str | None = None


def as_sample(item: dict[str, Any]) -> Sample | FailedSample:
    """The typed form of an item of xai.data.SegmentationDataset (with skip_errors and keep_original) or of
    xai.photographs.PhotographDataset."""
    if "error" in item:
        return FailedSample(item["index"], item["name"], item["error"], item.get("source"))
    return Sample(
        item["index"],
        item["name"],
        item["image"],
        item["mask"],
        item["letterbox"],
        item["rgb"],
        item["gt"],
        item.get("source"),
    )


@dataclass
class Explained:
    """One sample's results. maps: per method the C'×H×W maps at the model's input resolution (the
    engines' arrays, [0,1] on the photograph's pixels), empty: per method the classes whose region was
    empty (their maps are zeros); rgb and gt on the photograph (gt and gt_input None for a photograph
    without a mask), pred, the probability of the predicted class and every class's probability (input
    resolution)."""

    index: int
    name: str
    letterbox: Letterbox
    rgb: np.ndarray
    gt: np.ndarray | None
    gt_input: np.ndarray | None
    pred_input: np.ndarray
    classes: list[int]
    maps: dict[str, np.ndarray]
    empty: dict[str, list[bool]]
    seconds: dict[str, float]
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per method and the evaluation: what ran
    extra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per method: its maps beside the maps
    raw_extra: dict[str, np.ndarray] = field(default_factory=dict)
    evaluation: Any = None  # xai.evaluation.evaluate.SampleEvaluation with --evaluate
    confidence_input: np.ndarray | None = None  # H×W float32: the probability of the predicted class
    # C×H×W float16 (half a float32 copy's memory): every class's probability at the input resolution
    probabilities_input: np.ndarray | None = None
    source: str | None = None  # the photograph's path (--images)
    results: dict[str, Any] | None = None  # per method (Attribution, seconds), with Execution.keep_results

    @functools.cached_property
    def pred(self) -> np.ndarray:
        """The prediction on the photograph."""
        return self.letterbox.to_original(self.pred_input, nearest=True)

    @functools.cached_property
    def confidence(self) -> np.ndarray | None:
        """The probability of the predicted class on the photograph, mapped back as the prediction is (nearest:
        each pixel takes the input pixel that decided its class); computed when first asked."""
        if self.confidence_input is None:
            return None
        return self.letterbox.to_original(self.confidence_input, nearest=True)
