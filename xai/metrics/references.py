"""Reference maps shown beside the methods in every table:

random smooth map   U ~ uniform[0,1) at ⌈H/f⌉×⌈W/f⌉ cells (f = 16, at least 2×2), seeded, upsampled
                    bilinearly to H×W and min-max scaled per map: what a map that knows nothing scores
probability map     P_c(x), the model's own predicted probability of class c on x: the trivial
                    explanation of a segmentation model
Sobel edge map      S = |∂_x Y| + |∂_y Y| of the photograph's grey levels Y = 0.299 R + 0.587 G + 0.114 B
                    (its displayed pixels: RGB = clamp(x·std + mean, 0, 1)), ∂ the 3×3 Sobel kernels on the
                    photograph alone (border reflected, OpenCV's BORDER_REFLECT_101), min-max scaled over V,
                    0 on padding, the same map for every class: a model-free baseline (pytorch-grad-cam's
                    sobel_cam, 0.5·|dx| + 0.5·|dy| on uint8 grey levels, without its rounding and its
                    saturation at 255)
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

__all__ = ["LUMA", "SOBEL_X", "probability_maps", "random_smooth_maps", "sobel_map"]

LUMA = (0.299, 0.587, 0.114)  # grey levels from RGB (ITU-R BT.601, OpenCV's COLOR_RGB2GRAY)
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))  # ∂_x; ∂_y is its transpose


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


def sobel_map(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], valid: torch.Tensor | None = None
) -> torch.Tensor:
    """H×W in [0, 1]: the Sobel edge magnitude of the photograph, model-free (module docstring).

    S = |K ⋆ Y| + |Kᵀ ⋆ Y| with K = SOBEL_X and Y = Σ_k LUMA_k · clamp(x_k·std_k + mean_k, 0, 1), computed on
    the bounding box of V with its border reflected (the padding never makes an edge), then
    (S − min_V S) / (max_V S − min_V S) on V and 0 elsewhere (xai.maps.minmax).

    Args:
        x: one normalised image, 1×3×H×W or 3×H×W.
        mean, std: the normalisation of x, per channel.
        valid: H×W bool, the photograph's pixels V (None: every pixel).

    Returns:
        H×W float32 on x's device.
    """
    x = torch.as_tensor(x)
    x = x[0] if x.dim() == 4 and x.shape[0] == 1 else x
    if x.dim() != 3 or x.shape[0] != 3 or len(mean) != 3 or len(std) != 3:
        raise XAIError(f"a Sobel map takes one RGB image (3×H×W) and 3 means and stds, got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    valid = torch.ones((H, W), dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
    valid = valid.to(x.device).reshape(H, W)
    out = torch.zeros((H, W), dtype=torch.float32, device=x.device)
    rows, cols = valid.any(1).nonzero().flatten(), valid.any(0).nonzero().flatten()
    if not len(rows):
        return out
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    m, s = (torch.tensor(v, dtype=torch.float32, device=x.device).view(3, 1, 1) for v in (mean, std))
    rgb = (x[:, box[0], box[1]].float() * s + m).clamp(0, 1)
    grey = torch.einsum("k,khw->hw", torch.tensor(LUMA, dtype=torch.float32, device=x.device), rgb)
    padded = grey[None, None]
    for pad, size in (((1, 1, 0, 0), grey.shape[1]), ((0, 0, 1, 1), grey.shape[0])):  # …cb|abc|ba…; a|a|a
        padded = F.pad(padded, pad, mode="reflect" if size > 1 else "replicate")
    k = torch.tensor(SOBEL_X, dtype=torch.float32, device=x.device)
    d = F.conv2d(padded, torch.stack([k, k.T])[:, None])[0]
    out[box] = d.abs().sum(0)
    return minmax(out, valid)
