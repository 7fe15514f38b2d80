"""Reference maps shown beside the methods in every table:

random smooth map   U ~ uniform[0,1) at ⌈H/f⌉×⌈W/f⌉ cells (f = 16, at least 2×2), seeded, upsampled
                    bilinearly to H×W and min-max scaled per map: what a map that knows nothing scores
probability map     P_c(x), the model's own predicted probability of class c on x: the trivial
                    explanation of a segmentation model
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XAIError
from ..layers import model_device, preserved_state
from ..maps import minmax
from ..modeling import ScoredModel
from ..targets import check_classes

__all__ = ["probability_maps", "random_smooth_maps"]


def random_smooth_maps(
    shape: Sequence[int], seed: int = 0, factor: int = 16, device: torch.device | str | None = None
) -> torch.Tensor:
    """Maps of `shape` (…×H×W) in [0,1]: seeded low-resolution uniform noise, bilinear Up, min-max."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or min(shape) < 1 or factor < 1:
        raise XAIError(f"random maps need a shape …×H×W of positive sizes and factor ≥ 1, got {shape}, {factor}")
    H, W = shape[-2:]
    lead = shape[:-2]
    n = math.prod(lead)
    g = torch.Generator().manual_seed(int(seed))
    low = torch.rand((n, 1, max(2, math.ceil(H / factor)), max(2, math.ceil(W / factor))), generator=g)
    up = F.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)
    return minmax(up).view(*lead, H, W).to(device or "cpu")


def probability_maps(
    model: nn.Module, x: torch.Tensor, classes: Sequence[int], outputs_probabilities: bool | None = None
) -> torch.Tensor:
    """C'×H×W: P_c(x) of one image x (1×3×H×W or 3×H×W) for each class, on the model's device
    (softmax of the logits, or the model's own output when its head ends in an activation)."""
    x = torch.as_tensor(x)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1:
        raise XAIError(f"probability maps take one image (1×C×H×W), got shape {tuple(x.shape)}")
    scored = ScoredModel(model, "prob")
    if outputs_probabilities is not None:
        scored.probabilities = bool(outputs_probabilities)
    with preserved_state(model), torch.inference_mode():
        _, P = scored.forward(x.to(model_device(model), torch.float32))
    return P[0, check_classes(classes, P.shape[1])].clone()  # a normal tensor, not an inference one
