"""What every CAM method shares: one explain path; a method only computes its weights.

For an input x, the target layer's activations A (K channels, h×w) on x, the region score s_c of
class c (xai.targets) and a method's weights w:

    channel weights      w: N×K×C'           L_c = Σ_k w_kc · A_k
    element-wise weights w: N×K×h×w×C'       L_c = Σ_k w_kc ⊙ A_k
    map_c = minmax(Up(ReLU(L_c)))            ReLU at the layer's resolution, then bilinear Up to H×W

ReLU comes before upsampling because that is the definition of Grad-CAM (Selvaraju et al. 2017,
eq. 2) and of Score-CAM (Wang et al. 2020, eq. 2): L_c is a map over the layer's cells, and
upsampling is for display. pytorch-grad-cam and torch-cam do the same, so maps agree with theirs.
Min-max is per map; a constant map becomes all zeros. A class whose region is empty has s_c ≡ 0:
its map is all zeros and `empty` flags it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XAIError
from ..layers import (
    ActivationCapture,
    InputCapture,
    LeafActivation,
    model_device,
    preserved_state,
    resolve_target_layer,
)
from ..modeling import final_activation, outputs_probabilities
from ..targets import Score, check_region, check_score, class_scores_map, region_masks, region_score

__all__ = ["BaseCAM", "CAMOptions", "CAMResult", "Forward", "GradientCAM", "minmax_per_map", "upsample"]


def minmax_per_map(cam: torch.Tensor) -> torch.Tensor:
    """Scale each H×W map to [0,1]; a constant map becomes all zeros (never NaN)."""
    flat = cam.flatten(-2)
    lo = flat.amin(-1, keepdim=True)
    span = flat.amax(-1, keepdim=True) - lo
    scaled = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return scaled.view_as(cam)


def upsample(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=False: the Up of the CAM formulas."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class CAMOptions:
    """Options every method has. Fields whose metadata says result=False do not change the maps
    (batch size, progress bars): `result_key()` leaves them out, so a resumed run may change them."""

    target_layer: str
    score: str = "prob"  # "prob" | "logit" | "callable"
    region: str = "pred"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_key(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("result", True)}


def not_in_result(default: Any) -> Any:
    """A dataclass field that does not change the maps (excluded from CAMOptions.result_key)."""
    return field(default=default, metadata={"result": False})


@dataclass
class CAMResult:
    """maps: N×C'×H×W in [0,1]; raw: the same before min-max (after ReLU and Up); weights: the
    method's weights (N×K×C' or N×K×h×w×C'); classes: output indices; empty: N×C' True where the
    class's region was empty (map all zeros); prediction: N×H×W argmax of the model's output on x."""

    maps: torch.Tensor
    raw: torch.Tensor
    weights: torch.Tensor
    classes: list[int]
    empty: torch.Tensor
    region: str | None
    target_layer: str
    method: str
    prediction: torch.Tensor | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class Forward:
    """One forward pass of x with the target layer captured, and what a method's weights need.

    activations: N×K×h×w (for gradient methods a grad-requiring leaf that the rest of the network
    consumed); scores: N×C' region scores s_c(f(x)), differentiable for gradient methods;
    regions: N×C'×H×W 0/1 (None with a callable score)."""

    x: torch.Tensor
    output: torch.Tensor
    activations: torch.Tensor
    scores: torch.Tensor
    regions: torch.Tensor | None
    classes: list[int]
    stats: dict[str, Any] = field(default_factory=dict)


class BaseCAM:
    """`cam(x, classes=None, gt=None, valid=None)` -> N×C'×H×W float32 maps in [0,1], every class from
    one forward pass of x. Subclasses register with xai.methods.register and implement `weights`.

    score: "prob" | "logit" | a callable mapping an output batch (B×C×H×W) to scores (B×C').
    region: pred | gt | tp | fp | fn | all (xai.targets).
    """

    name: ClassVar[str] = "cam"
    label: ClassVar[str] = "CAM"
    uses_gradients: ClassVar[bool] = False
    default_layer: ClassVar[str | None] = None  # None: the encoder's deepest stage

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | None = None,
        score: Score = "prob",
        region: str = "pred",
        options: CAMOptions | None = None,
    ):
        check_score(score)
        check_region(region)
        self.model = model
        self.target_layer, self.layer = resolve_target_layer(model, target_layer or self.default_layer)
        self.score = score
        self.region = region
        self.outputs_probabilities = outputs_probabilities(model)
        self.head_activation = final_activation(model)
        self.options = options if options is not None else CAMOptions(self.target_layer, self._score_name(), region)
        self.last: CAMResult | None = None

    def _score_name(self) -> str:
        return "callable" if callable(self.score) else str(self.score)

    # ---- what a method implements ----------------------------------------------------------------

    def weights(self, fwd: Forward) -> torch.Tensor:
        """N×K×C' channel weights, or N×K×h×w×C' element-wise weights."""
        raise NotImplementedError

    def channels_last(self, x: torch.Tensor) -> bool:
        """Whether the model runs in channels_last memory format during a call on inputs like x."""
        return False

    # ---- the one path ----------------------------------------------------------------------------

    def __call__(
        self,
        x: torch.Tensor,
        classes: Sequence[int] | None = None,
        gt: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.last = self.explain(x, classes=classes, gt=gt, valid=valid)
        return self.last.maps

    def explain(
        self,
        x: torch.Tensor,
        classes: Sequence[int] | None = None,
        gt: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> CAMResult:
        """valid (N×H×W bool, optional): the pixels that belong to the photograph (not padding);
        regions are restricted to them."""
        x = self._check_input(x)
        if self.uses_gradients and torch.is_inference_mode_enabled():
            raise XAIError(f"{self.label} needs gradients: call it outside torch.inference_mode()")
        t0 = time.perf_counter()
        grad_mode = torch.enable_grad() if self.uses_gradients else torch.inference_mode()
        with preserved_state(self.model, channels_last=self.channels_last(x)), grad_mode:
            fwd = self._forward_with_layer(x, classes, gt, valid)
            weights = self.weights(fwd).detach().float()
        acts = fwd.activations.detach().float()
        with torch.inference_mode():
            combined = self._combine(weights, acts)
            empty = self._empty(fwd)
            combined = combined.masked_fill(empty[:, :, None, None], 0.0)
            raw = upsample(torch.relu(combined), (int(x.shape[-2]), int(x.shape[-1])))
            maps = minmax_per_map(raw)
        stats = {"channels": int(acts.shape[1]), **fwd.stats, "seconds": time.perf_counter() - t0}
        return CAMResult(
            maps=maps,
            raw=raw,
            weights=weights,
            classes=fwd.classes,
            empty=empty,
            region=None if callable(self.score) else self.region,
            target_layer=self.target_layer,
            method=self.name,
            prediction=fwd.output.detach().argmax(1),
            stats=stats,
        )

    @staticmethod
    def _combine(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        if weights.dim() == 3:
            return torch.einsum("nkc,nkhw->nchw", weights, acts)
        if weights.dim() == 5:
            return torch.einsum("nkhwc,nkhw->nchw", weights, acts)
        raise XAIError(f"a method's weights must be N×K×C' or N×K×h×w×C', got shape {tuple(weights.shape)}")

    def _empty(self, fwd: Forward) -> torch.Tensor:
        if fwd.regions is None:
            return torch.zeros(fwd.scores.shape, dtype=torch.bool, device=fwd.scores.device)
        return fwd.regions.flatten(2).sum(-1) == 0

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise XAIError(f"{self.label} expects an N×C×H×W tensor, got {getattr(x, 'shape', type(x))}")
        if not torch.isfinite(x).all():
            raise XAIError(f"{self.label}: the input holds NaN or infinite values")
        return x.to(self.device, torch.float32)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def _forward_with_layer(
        self, x: torch.Tensor, classes: Sequence[int] | None, gt: torch.Tensor | None, valid: torch.Tensor | None
    ) -> Forward:
        capture = LeafActivation(self.layer) if self.uses_gradients else ActivationCapture(self.layer)
        try:
            output, P = self.forward_scores(x)
        finally:
            capture.remove()
        if capture.value is None:
            raise XAIError(f"target layer '{self.target_layer}' did not run in the forward pass")
        if callable(self.score):
            scores = self.region_scores(P, None, [])
            return Forward(x, output, capture.value, scores, None, list(range(scores.shape[1])))
        class_ids = self._classes(classes, P.shape[1])
        regions = self._regions(output.detach(), gt, class_ids, valid)
        return Forward(x, output, capture.value, self.region_scores(P, regions, class_ids), regions, class_ids)

    def forward_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(model output, per-pixel class scores P) of one forward pass: P is what `score` reads
        (softmax of the logits, the model's own probabilities, or logits; the raw output for a callable)."""
        tap = InputCapture(self.head_activation) if self.score == "logit" and self.head_activation is not None else None
        try:
            output = self.model(x)
            if isinstance(output, (tuple, list)):
                output = output[0]
            scored = tap.value if tap is not None and tap.value is not None else output
        finally:
            if tap is not None:
                tap.remove()
        if callable(self.score):
            return output, scored
        return output, class_scores_map(scored, self.score, self.outputs_probabilities)

    def region_scores(
        self,
        P: torch.Tensor,
        regions: torch.Tensor | None,
        classes: Sequence[int],
        image_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """s (B×C'): the region score of each class on each row of P, or the score callable's output."""
        if callable(self.score):
            s = self.score(P)
            if not isinstance(s, torch.Tensor) or s.dim() != 2 or s.shape[0] != P.shape[0]:
                raise XAIError(f"the score callable must return a B×C' tensor, got {getattr(s, 'shape', type(s))}")
            return s.float()
        assert regions is not None
        return region_score(P.float(), regions, classes, image_index)

    def _classes(self, classes: Sequence[int] | None, num_outputs: int) -> list[int]:
        if classes is None:
            return list(range(num_outputs))
        ids = [int(c) for c in classes]
        bad = [c for c in ids if not 0 <= c < num_outputs]
        if bad or not ids:
            raise XAIError(f"class index {bad or ids} out of range: the model has {num_outputs} output classes")
        return ids

    def _regions(
        self, output: torch.Tensor, gt: torch.Tensor | None, classes: list[int], valid: torch.Tensor | None
    ) -> torch.Tensor:
        pred = output.argmax(1)
        if gt is not None:
            gt = torch.as_tensor(gt)
            gt = gt.unsqueeze(0) if gt.dim() == 2 else gt
        regions = region_masks(pred, gt, classes, self.region, output.shape[1])
        if valid is not None:
            valid = torch.as_tensor(valid, device=regions.device)
            valid = valid.unsqueeze(0) if valid.dim() == 2 else valid
            if valid.shape != pred.shape:
                raise XAIError(
                    f"valid mask of shape {tuple(valid.shape)} does not match the input's {tuple(pred.shape)}"
                )
            regions = regions * valid.unsqueeze(1).float()
        return regions


class GradientCAM(BaseCAM):
    """Methods whose weights come from the gradients G_kc = ∂s_c/∂A_k (N×K×h×w per class).

    One forward pass; each class's gradient is taken from the same graph (retain_graph), which is cut
    at the target layer (a leaf copy of A), so each backward pass runs only through the layers after
    it and frozen encoders work. A class whose score does not depend on A gets zero gradients."""

    uses_gradients = True

    def weights(self, fwd: Forward) -> torch.Tensor:
        acts = fwd.activations
        grads = []
        last = fwd.scores.shape[1] - 1
        for j in range(fwd.scores.shape[1]):
            score = fwd.scores[:, j].sum()
            grad = None
            if score.requires_grad:
                (grad,) = torch.autograd.grad(score, acts, retain_graph=j < last, allow_unused=True)
            grads.append(torch.zeros_like(acts) if grad is None else grad)
        fwd.stats.update(forwards=1, backwards=len(grads))
        return self.gradient_weights(torch.stack(grads, dim=-1).float(), acts.detach().float())

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """The method's weights from G (N×K×h×w×C') and A (N×K×h×w)."""
        raise NotImplementedError
