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

Every CAM takes eigen_smooth (L_c replaced by the first principal component of the weighted
activations) and aug_smooth (the mean of the maps of flipped and scaled inputs, mapped back), as
pytorch-grad-cam's CAMs do: xai.methods.smoothing has their definitions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XAIError
from ..layers import ActivationCapture, LeafActivation, resolve_target_layer
from ..maps import minmax
from ..options import option
from .base import Explainer, ExplainerOptions, Forward
from .smoothing import VIEWS, View, agreeing_sign, first_component, principal_map

__all__ = ["BaseCAM", "CAMOptions", "GradientCAM", "agreeing_sign", "combine", "first_component", "upsample"]


@dataclass(frozen=True)
class CAMOptions(ExplainerOptions):
    target_layer: str | nn.Module | list[Any] | None = option(
        None,
        "the layer whose activations are weighted: a dotted module name (in Python also the module); "
        "default: the decoder's output of an encoder-decoder model, else the encoder's deepest stage",
        key="layer",
    )
    eigen_smooth: bool = option(
        False,
        "each class's map is the first principal component of its weighted activations w·A instead of their "
        "sum (pytorch-grad-cam's eigen_smooth; no change for Eigen-CAM, Eigen-Grad-CAM, Seg-Eigen-CAM and "
        "KPCA-CAM, whose maps already are principal components)",
        key="eigen",
    )
    aug_smooth: bool = option(
        False,
        "the mean of the maps of 6 views, input flipped left-right or not × 0.9, 1, 1.1, each mapped back "
        "(pytorch-grad-cam's aug_smooth; the region flips with the image; 6 times the cost)",
        key="aug",
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


class BaseCAM(Explainer):
    """A CAM: `weights(fwd)` from the captured activations fwd.activations (N×K×h×w) and the region
    scores fwd.scores (N×C'); the rest is shared."""

    Options = CAMOptions
    family = "cam"
    _view: View | None = None  # during aug_smooth's passes: the view whose output forward_scores maps back

    def configure(self, options: Any) -> Any:
        self.target_layer, self.layer = resolve_target_layer(self.model, options.target_layer)
        return options.replace(target_layer=self.target_layer)

    def capture(self) -> ActivationCapture:
        return LeafActivation(self.layer) if self.uses_gradients else ActivationCapture(self.layer)

    def weights(self, fwd: Forward) -> torch.Tensor:
        """N×K×C' channel weights, or N×K×h×w×C' element-wise weights."""
        raise NotImplementedError

    def forward_scores(
        self, x: torch.Tensor, through: Any = None, batched: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Explainer.forward_scores; in a view of aug_smooth, P is mapped back to the photograph (T⁻¹ P), so
        that the call's regions (and a callable score) apply to it as they are. The output stays as it is."""
        output, P = super().forward_scores(x, through, batched)
        return (output, P) if self._view is None else (output, self._view.undo(P))

    def attribution(self, fwd: Forward) -> torch.Tensor:
        """attribute(fwd), or with aug_smooth the mean over the views T of T⁻¹ minmax_V(ReLU(A(T x)))
        (xai.methods.smoothing): every view keeps fwd's regions, classes and contrast weights."""
        if not self.options.aug_smooth:
            return self.attribute(fwd)
        empty, valid = fwd.empty()[:, :, None, None], fwd.valid[:, None]
        total = None
        for view in VIEWS:
            raw = self.attribute(fwd) if view.identity else self._view_attribution(fwd, view)
            with torch.inference_mode():
                one = minmax(self.positive(raw.detach().float()).masked_fill(empty, 0.0), valid)
                total = one if total is None else total + one
        assert total is not None
        fwd.stats["views"] = len(VIEWS)
        return total / len(VIEWS)

    def _view_attribution(self, fwd: Forward, view: View) -> torch.Tensor:
        """T⁻¹ A(T x): one view's forward pass (its own activations, the scores of T⁻¹ P on fwd's regions)
        and attribution, mapped back; its forward and backward counts are added to fwd's."""
        capture = self.capture()
        self._view = view
        try:
            x = view.apply(fwd.x)
            with capture if capture is not None else contextlib.nullcontext():
                output, P = self.forward_scores(x)
            scores = self.region_scores(P, fwd.regions, fwd.classes)
            seen = Forward(
                x, output, scores, fwd.regions, fwd.classes, view.undo(fwd.valid),  # a flip is its own inverse
                capture.value if capture is not None else None, P=P.detach(),
            )  # fmt: skip
            raw = view.undo(self.attribute(seen))
        finally:
            self._view = None
        for key in ("forwards", "backwards"):
            if isinstance(seen.stats.get(key), int):
                fwd.stats[key] = int(fwd.stats.get(key, 0)) + seen.stats[key]
        return raw

    def attribute(self, fwd: Forward) -> torch.Tensor:
        if fwd.activations is None:
            raise XAIError(f"target layer '{self.target_layer}' did not run in the forward pass")
        weights = self.weights(fwd).detach().float()
        acts = fwd.activations.detach().float()
        fwd.extra["weights"] = weights
        fwd.stats.setdefault("channels", int(acts.shape[1]))
        with torch.inference_mode():
            L = principal_map(weights, acts) if self.options.eigen_smooth else combine(weights, acts)
            return upsample(torch.relu(L), (int(fwd.x.shape[-2]), int(fwd.x.shape[-1])))

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
