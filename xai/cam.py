"""What Score-CAM and Grad-CAM share: the target layer, the output tap, regions, classes, the call."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import XAIError
from .layers import ActivationCapture, InputCapture, model_device, resolve_target_layer
from .modeling import final_activation, outputs_probabilities
from .targets import CAMResult, Score, check_region, check_score, class_scores_map, region_masks


class BaseCAM:
    """Common set-up: `cam(x, classes=None, gt=None)` -> N×C'×H×W float32 maps in [0,1].

    `score`: "prob" | "logit" | a callable mapping an output batch (B×C×H×W) to scores (B×C').
    `region`: pred | gt | tp | fp | fn | all (see xai.targets).
    """

    method = "CAM"

    def __init__(self, model: nn.Module, target_layer: str | None = None, score: Score = "prob",
                 region: str = "pred"):
        check_score(score)
        check_region(region)
        self.model = model
        self.target_layer, self.layer = resolve_target_layer(model, target_layer)
        self.score = score
        self.region = region
        self.outputs_probabilities = outputs_probabilities(model)
        self._activation = final_activation(model)
        self.last: CAMResult | None = None

    def __call__(self, x: torch.Tensor, classes: Sequence[int] | None = None, gt: torch.Tensor | None = None,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
        self.last = self.explain(x, classes=classes, gt=gt, valid=valid)
        return self.last.maps

    def explain(self, x: torch.Tensor, classes: Sequence[int] | None = None, gt: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> CAMResult:
        """valid (N×H×W bool, optional): the pixels that belong to the photograph (not padding);
        regions are restricted to them."""
        raise NotImplementedError

    # helpers for subclasses
    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise XAIError(f"{self.method} expects an N×C×H×W tensor, got {getattr(x, 'shape', type(x))}")
        if not torch.isfinite(x).all():
            raise XAIError(f"{self.method}: the input holds NaN or infinite values")
        return x.to(self.device, torch.float32)

    def _logit_tap(self) -> InputCapture | None:
        """With score='logit' on a model whose head ends in an activation, read the activation's input."""
        if self.score == "logit" and self._activation is not None:
            return InputCapture(self._activation)
        return None

    def _forward(self, x: torch.Tensor, capture_layer: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(output, activations or None, per-pixel class scores P) of one forward pass."""
        capture = ActivationCapture(self.layer) if capture_layer else None
        tap = self._logit_tap()
        try:
            output = self.model(x)
            if isinstance(output, (tuple, list)):
                output = output[0]
            scored = tap.value if tap is not None else output
        finally:
            if capture is not None:
                capture.remove()
            if tap is not None:
                tap.remove()
        acts = capture.value if capture is not None else None
        if acts is None and capture_layer:
            raise XAIError(f"target layer '{self.target_layer}' did not run in the forward pass")
        P = scored if callable(self.score) else class_scores_map(scored, self.score, self.outputs_probabilities)
        return output, acts, P

    def _classes(self, classes: Sequence[int] | None, num_outputs: int) -> list[int]:
        if callable(self.score):
            return list(range(num_outputs))
        if classes is None:
            return list(range(num_outputs))
        classes = [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < num_outputs]
        if bad or not classes:
            raise XAIError(f"class index {bad or classes} out of range: the model has {num_outputs} output classes")
        return classes

    def _regions(self, output: torch.Tensor, gt: torch.Tensor | None, classes: list[int],
                 valid: torch.Tensor | None = None) -> torch.Tensor:
        pred = output.argmax(1)
        if gt is not None:
            gt = torch.as_tensor(gt)
            if gt.dim() == 2:
                gt = gt.unsqueeze(0)
        regions = region_masks(pred, gt, classes, self.region, output.shape[1])
        if valid is not None:
            valid = torch.as_tensor(valid, device=regions.device)
            if valid.dim() == 2:
                valid = valid.unsqueeze(0)
            if valid.shape != pred.shape:
                raise XAIError(f"valid mask of shape {tuple(valid.shape)} does not match the input's {tuple(pred.shape)}")
            regions = regions * valid.unsqueeze(1).float()
        return regions
