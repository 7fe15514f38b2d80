"""Regions and scores: what a class's score is, on which pixels.

The score of class c on an output y is s_c(y) = Σ_{p ∈ R_c} P_c(y)_p (RegionScore: the pixel sum, or
the mean, over the class's region R_c) of the class-c probability P_c (softmax over classes for a logit
model, the model's own output when its head already ends in an activation; or the logit with
score="logit").
Regions: pred (pixels predicted as c on the input), gt, tp, fp, fn, all (every pixel), and two of the
prediction's borders, with w the band width (boundary_width) and D_w, E_w dilation and erosion by the
(2w+1)×(2w+1) square (pixels outside the image left out of the window, so the image's edge is no border):

    boundary:       R_c = D_w(M_c) ∖ E_w(M_c)                   M_c: the pixels predicted as c; the band of
                                                               pixels within w (Chebyshev) of c's border,
                                                               w inside and w outside
    junction A,B:   R_c = (M_A ∩ D_w(M_B)) ∪ (M_B ∩ D_w(M_A))   the same for every explained class c: the
                                                               pixels of A within w of B and of B within w
                                                               of A (A and B never touch: empty)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import XAIError

REGIONS = (  # instances: pred; --evaluate explains each component
    "pred", "gt", "tp", "fp", "fn", "all", "instances", "boundary", "junction"
)  # fmt: skip
BOUNDARY_WIDTH = 2  # the default band width (pixels) of the regions boundary and junction
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


@dataclass(frozen=True)
class Region:
    """A region with what it needs besides the prediction: the band width of boundary and junction, the
    output ids (A, B) of junction's classes; `text` is how figures name it."""

    name: str
    width: int = BOUNDARY_WIDTH
    junction: tuple[int, int] | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text or self.name


def dilate(mask: torch.Tensor, width: int) -> torch.Tensor:
    """D_w(M) (N×K×H×W bool): the pixels within `width` (Chebyshev distance) of a pixel of M."""
    return F.max_pool2d(mask.float(), 2 * width + 1, stride=1, padding=width) > 0


def erode(mask: torch.Tensor, width: int) -> torch.Tensor:
    """E_w(M) (N×K×H×W bool): the pixels whose whole window (inside the image) lies in M."""
    return ~dilate(~mask, width)


def border_region(pred: torch.Tensor, classes: Sequence[int], region: Region) -> torch.Tensor:
    """R (N×C'×H×W bool) of boundary or junction (module docstring) on the prediction pred (N×H×W ids)."""
    w = int(region.width)
    if region.name == "boundary":
        idx = torch.as_tensor(list(classes), device=pred.device).view(1, -1, 1, 1)
        m = pred.unsqueeze(1) == idx
        return dilate(m, w) & ~erode(m, w)
    if region.junction is None:
        raise XAIError("region 'junction' needs its two classes: --junction A B (in Python junction=(A, B))")
    a, b = (pred.unsqueeze(1) == c for c in region.junction)
    touch = (a & dilate(b, w)) | (b & dilate(a, w))
    return touch.expand(-1, len(list(classes)), -1, -1)


def region_masks(
    pred: torch.Tensor, gt: torch.Tensor | None, classes: Sequence[int], region: str | Region, num_classes: int
) -> torch.Tensor:
    """R (N×C'×H×W float32, 0/1) of each requested class. Where gt is given, pixels whose gt is outside
    [0, C) (padding, ignore labels such as 255) belong to no region, whichever the region. region: a name
    of REGIONS, or a Region (boundary and junction with their width and classes)."""
    spec = region if isinstance(region, Region) else Region(region)
    region = spec.name
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
    if region in ("boundary", "junction"):
        band = border_region(pred, classes, spec)
        return (band if valid is None else band & valid).float()
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


def resolve_class(value: str | int, names: Sequence[str] | None, num_outputs: int, what: str) -> int:
    """The output id of a class given by name (as --classes names them: the checkpoint's, the config's or
    --class_names) or by output id (an int or its digits); anything else one XAIError line naming `what`."""
    text = str(value).strip()
    if names is not None and text in names:
        return list(names).index(text)
    if text.isdigit() and int(text) < num_outputs:
        return int(text)
    known = f"the model's classes are {', '.join(names)}" if names else f"output ids 0..{num_outputs - 1}"
    raise XAIError(f"unknown class '{text}' for {what}: {known}")


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
