"""Regions and scores: what a class's score is, on which pixels.

The score of class c on an output y is s_c(y) = Σ_{p ∈ R_c} P_c(y)_p, the pixel sum over the class's
region R_c of the class-c probability P_c (softmax over classes for a logit model, the model's own
output when its head already ends in an activation; or the logit with score="logit").
Regions: pred (pixels predicted as c on the input), gt, tp, fp, fn, all (every pixel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .errors import XAIError

REGIONS = ("pred", "gt", "tp", "fp", "fn", "all")
SCORES = ("prob", "logit")
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
    """R (N×C'×H×W float32, 0/1) of each requested class. gt values outside [0, C) are ignored."""
    check_region(region)
    idx = torch.as_tensor(list(classes), device=pred.device).view(1, -1, 1, 1)
    if region == "all":
        return torch.ones(pred.shape[0], len(classes), *pred.shape[-2:], device=pred.device)
    is_pred = pred.unsqueeze(1) == idx
    if region == "pred":
        return is_pred.float()
    if gt is None:
        raise XAIError(f"region '{region}' needs the ground truth (gt) of each image")
    gt = gt.to(pred.device).long()
    if gt.shape != pred.shape:
        raise XAIError(f"ground truth of shape {tuple(gt.shape)} does not match the input's {tuple(pred.shape)}")
    valid = ((gt >= 0) & (gt < num_classes)).unsqueeze(1)
    is_gt = (gt.unsqueeze(1) == idx) & valid
    if region == "gt":
        return is_gt.float()
    if region == "tp":
        return (is_gt & is_pred).float()
    if region == "fp":
        return (is_pred & ~is_gt & valid).float()
    return (is_gt & ~is_pred).float()  # fn


def region_score(
    P: torch.Tensor, regions: torch.Tensor, classes: Sequence[int], image_index: torch.Tensor | None = None
) -> torch.Tensor:
    """s (B×C'): Σ_p R_{n(b),j,p} · P_{b,classes[j],p}, with n(b) = image_index[b] (default b).

    Rows of one image share its regions by broadcasting: no B×C'×H×W copy of the regions is made.
    """
    classes = list(classes)
    sel = P if classes == list(range(P.shape[1])) else P[:, classes]
    if image_index is None:
        return torch.einsum("bchw,bchw->bc", sel, regions)
    first = int(image_index[0])
    if bool((image_index == first).all()):
        return torch.einsum("bchw,chw->bc", sel, regions[first])
    out = sel.new_empty(sel.shape[0], sel.shape[1])
    for n in image_index.unique().tolist():
        rows = (image_index == n).nonzero().flatten()
        out[rows] = torch.einsum("bchw,chw->bc", sel[rows], regions[n])
    return out
