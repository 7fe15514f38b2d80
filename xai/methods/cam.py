"""The CAM family: a method is its weights over one layer's activations.

For the target layer's activations A (K channels, h×w) on x and a method's weights w:

    channel weights      w: N×K×C'           L_c = Σ_k w_kc · A_k
    element-wise weights w: N×K×h×w×C'       L_c = Σ_k w_kc ⊙ A_k
    A_c = Up(ReLU(L_c))                      ReLU at the layer's resolution, then bilinear Up to H×W

and then min-max over the photograph as every method (xai.methods.base). ReLU comes before upsampling
because that is the definition of Grad-CAM (Selvaraju et al. 2017, eq. 2) and of Score-CAM (Wang et
al. 2020, eq. 2): L_c is a map over the layer's cells, and upsampling is for display. pytorch-grad-cam
and torch-cam do the same, so maps agree with theirs.

A new CAM is one file in xai/methods/ with a registered subclass of BaseCAM (`weights(fwd)`) or of
GradientCAM (`gradient_weights(grads, acts)`); a CAM whose map is not a weighted sum of the channels
(Eigen-CAM, Eigen-Grad-CAM, KPCA-CAM) implements `attribute(fwd)` and returns its map at the layer's
resolution through `layer_map(L, fwd)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XAIError
from ..layers import ActivationCapture, LeafActivation, resolve_target_layer
from ..options import option
from .base import Explainer, ExplainerOptions, Forward

__all__ = ["BaseCAM", "CAMOptions", "GradientCAM", "agreeing_sign", "combine", "first_component", "upsample"]


@dataclass(frozen=True)
class CAMOptions(ExplainerOptions):
    target_layer: str | nn.Module | list[Any] | None = option(
        None,
        "the layer whose activations are weighted: a dotted module name (in Python also the module); "
        "default: the decoder's output of an encoder-decoder model, else the encoder's deepest stage",
        key="layer",
    )


def upsample(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=False: the Up of the CAM formulas."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def combine(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """L (N×C'×h×w) = Σ_k w_kc · A_k for channel weights N×K×C', or Σ_k w_kc ⊙ A_k for N×K×h×w×C'."""
    if weights.dim() == 3:
        return torch.einsum("nkc,nkhw->nchw", weights, acts)
    if weights.dim() == 5:
        return torch.einsum("nkhwc,nkhw->nchw", weights, acts)
    raise XAIError(f"a method's weights must be N×K×C' or N×K×h×w×C', got shape {tuple(weights.shape)}")


def first_component(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For B matrices of hw rows of K values (B×hw×K): the centred rows on their first principal component
    (B×hw, sign as the SVD returns it) and that component v₁ (B×K): Ā = U Σ Vᵀ, p = Ā v₁."""
    centred = rows - rows.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    v = vh[:, 0, :]
    return (centred @ v.unsqueeze(-1)).squeeze(-1), v


def agreeing_sign(projection: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """B×1 signs ±1 that make each row of projection (B×hw) correlate non-negatively with reference's."""
    p = projection - projection.mean(1, keepdim=True)
    r = reference - reference.mean(1, keepdim=True)
    return torch.where((p * r).sum(1) < 0, -1.0, 1.0).view(-1, 1)


class BaseCAM(Explainer):
    """A CAM: `weights(fwd)` from the captured activations fwd.activations (N×K×h×w) and the region
    scores fwd.scores (N×C'); the rest is shared."""

    Options = CAMOptions
    family = "cam"

    def configure(self, options: Any) -> Any:
        self.target_layer, self.layer = resolve_target_layer(self.model, options.target_layer)
        return options.replace(target_layer=self.target_layer)

    def capture(self) -> ActivationCapture:
        return LeafActivation(self.layer) if self.uses_gradients else ActivationCapture(self.layer)

    def weights(self, fwd: Forward) -> torch.Tensor:
        """N×K×C' channel weights, or N×K×h×w×C' element-wise weights."""
        raise NotImplementedError

    def attribute(self, fwd: Forward) -> torch.Tensor:
        if fwd.activations is None:
            raise XAIError(f"target layer '{self.target_layer}' did not run in the forward pass")
        weights = self.weights(fwd).detach().float()
        acts = fwd.activations.detach().float()
        fwd.extra["weights"] = weights
        fwd.stats.setdefault("channels", int(acts.shape[1]))
        with torch.inference_mode():
            return upsample(torch.relu(combine(weights, acts)), (int(fwd.x.shape[-2]), int(fwd.x.shape[-1])))

    def layer_map(self, L: torch.Tensor, fwd: Forward) -> torch.Tensor:
        """Up(ReLU(L)) for a map L at the layer's resolution (N×C'×h×w, or N×1×h×w: one for every class)."""
        up = upsample(torch.relu(L.detach().float()), (int(fwd.x.shape[-2]), int(fwd.x.shape[-1])))
        return up.expand(up.shape[0], len(fwd.classes), *up.shape[-2:]).clone()


class GradientCAM(BaseCAM):
    """CAMs whose weights come from the gradients G_kc = ∂s_c/∂A_k (N×K×h×w per class).

    One forward pass; each class's gradient is taken from the same graph (retain_graph), which is cut
    at the target layer (a leaf copy of A), so each backward pass runs only through the layers after
    it and frozen encoders work. A class whose score does not depend on A gets zero gradients."""

    uses_gradients = True

    def weights(self, fwd: Forward) -> torch.Tensor:
        grads, acts = self.gradients(fwd)
        return self.gradient_weights(grads, acts)

    def gradients(self, fwd: Forward) -> tuple[torch.Tensor, torch.Tensor]:
        """(G, A): every class's gradient G (N×K×h×w×C', float32) and the activations A (N×K×h×w, detached)."""
        if fwd.activations is None:
            raise XAIError(f"target layer '{self.target_layer}' did not run in the forward pass")
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
        return torch.stack(grads, dim=-1).float(), acts.detach().float()

    def gradient_weights(self, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """The method's weights from G (N×K×h×w×C') and A (N×K×h×w)."""
        raise NotImplementedError
