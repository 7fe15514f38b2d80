"""Regions and scores: what a class's score is, on which pixels.

The score of class c on an output y is s_c(y) = Σ_{p ∈ R_c} P_c(y)_p (RegionScore: the pixel sum, or
the mean, over the class's region R_c) of the class-c probability P_c (softmax over classes for a logit
model, the model's own output when its head already ends in an activation; or the logit with
score="logit").
Regions: pred (pixels predicted as c on the input), gt, tp, fp, fn, all (every pixel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import XAIError

REGIONS = ("pred", "gt", "tp", "fp", "fn", "all", "instances")  # instances: pred; --evaluate explains each component
TRUTH_REGIONS = ("gt", "tp", "fp", "fn")  # the regions that need a ground truth (a mask) of each image
SCORES = ("prob", "logit")
REDUCTIONS = ("sum", "mean")
ScoreFn = Callable[[torch.Tensor], torch.Tensor]
Score = str | ScoreFn


def check_score(score: Score) -> None:
    if not callable(score) and score not in SCORES:
        raise XAIError(f"unknown score '{score}': choose one of {', '.join(SCORES)} or pass a callable")


def check_region(region: str) -> None:
    if region not in REGIONS:
        raise XAIError(f"unknown region '{region}': choose one of {', '.join(REGIONS)}")


def class_scores_map(output: torch.Tensor, score: str, outputs_probabilities: bool) -> torch.Tensor:
    """Per-pixel class scores P (B×C×H×W, float32) from what the model returned (or its logits)."""
    output = output.float()
    if score == "logit" or outputs_probabilities:
        return output
    return torch.softmax(output, dim=1)


def region_masks(
    pred: torch.Tensor, gt: torch.Tensor | None, classes: Sequence[int], region: str, num_classes: int
) -> torch.Tensor:
    """R (N×C'×H×W float32, 0/1) of each requested class. Where gt is given, pixels whose gt is outside
    [0, C) (padding, ignore labels such as 255) belong to no region, whichever the region."""
    check_region(region)
    idx = torch.as_tensor(list(classes), device=pred.device).view(1, -1, 1, 1)
    valid = None
    if gt is not None:
        gt = gt.to(pred.device).long()
        if gt.shape != pred.shape:
            raise XAIError(f"ground truth of shape {tuple(gt.shape)} does not match the input's {tuple(pred.shape)}")
        valid = ((gt >= 0) & (gt < num_classes)).unsqueeze(1)
    if region == "all":
        every = torch.ones(pred.shape[0], len(classes), *pred.shape[-2:], device=pred.device)
        return every if valid is None else every * valid
    is_pred = pred.unsqueeze(1) == idx
    if region in ("pred", "instances"):
        return (is_pred if valid is None else is_pred & valid).float()
    if gt is None or valid is None:
        raise XAIError(f"region '{region}' needs the ground truth (gt) of each image")
    is_gt = (gt.unsqueeze(1) == idx) & valid
    if region == "gt":
        return is_gt.float()
    if region == "tp":
        return (is_gt & is_pred).float()
    if region == "fp":
        return (is_pred & ~is_gt & valid).float()
    return (is_gt & ~is_pred).float()  # fn


def check_classes(classes: Sequence[int] | None, num_outputs: int) -> list[int]:
    """The class indices asked for (None: every output), each checked against the model's output count."""
    if classes is None:
        return list(range(num_outputs))
    ids = [int(c) for c in classes]
    bad = [c for c in ids if not 0 <= c < num_outputs]
    if bad or not ids:
        raise XAIError(f"class index {bad or ids} out of range: the model has {num_outputs} output classes")
    return ids


@dataclass(frozen=True)
class RegionScore:
    """The score of class c on an output: P_c summed (reduction "sum") or averaged ("mean") over its region.

        sum:  s_c = Σ_{p∈R_c} P_c,p        mean: s_c = (1/|R_c|) Σ_{p∈R_c} P_c,p   (0 for an empty R_c)

    P is what `kind` names (xai.targets.class_scores_map): the class probability, or its logit. The
    methods' papers sum; the faithfulness metrics average, so that numbers compare across classes."""

    kind: str = "prob"
    reduction: str = "sum"

    def __post_init__(self) -> None:
        check_score(self.kind)
        if self.reduction not in REDUCTIONS:
            raise XAIError(f"unknown score reduction '{self.reduction}': choose one of {', '.join(REDUCTIONS)}")

    def weights(self, regions: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The pixel weights of the score: R (sum) or R/|R| (mean), per image and class."""
        w = regions.to(dtype)
        if self.reduction == "mean":
            w = w / w.flatten(-2).sum(-1).clamp_min(1)[..., None, None]
        return w

    def __call__(
        self,
        P: torch.Tensor,
        regions: torch.Tensor,
        classes: Sequence[int],
        image_index: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """s (B×C'): the score of row b of P (B×C×H×W) on the regions of image n(b) = image_index[b]
        (default b). regions: N×C'×H×W, or C'×H×W shared by every row. No B×C'×H×W copy of the regions
        is made and nothing waits for the device (no host synchronisation)."""
        classes = list(classes)
        sel = (P if classes == list(range(P.shape[1])) else P[:, classes]).to(dtype)
        w = self.weights(regions, dtype)
        if w.dim() == 3:
            return torch.einsum("bchw,chw->bc", sel, w)
        if image_index is None:
            return torch.einsum("bchw,bchw->bc", sel, w)
        if w.shape[0] == 1:
            return torch.einsum("bchw,chw->bc", sel, w[0])
        every = torch.einsum("bchw,nchw->bnc", sel, w)  # N× the arithmetic, no gather of the regions
        index = image_index.to(every.device).view(-1, 1, 1).expand(-1, 1, every.shape[2])
        return every.gather(1, index).squeeze(1)


def region_score(
    P: torch.Tensor, regions: torch.Tensor, classes: Sequence[int], image_index: torch.Tensor | None = None
) -> torch.Tensor:
    """s (B×C'): Σ_p R_{n(b),j,p} · P_{b,classes[j],p} (RegionScore("prob", "sum") on given P)."""
    return RegionScore()(P, regions, classes, image_index)
