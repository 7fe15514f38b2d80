"""ShapleyCAM (Cai 2025, arXiv:2501.06261, "CAMs as Shapley value-based explainers"; pytorch-grad-cam's
ShapleyCAM): Grad-CAM's channel weights with a second-order term, from a Taylor approximation of the
channels' Shapley values,

    w_kc = (1 / hw) Σ_ij (G_c − ½ H_c A)_k[i,j]        L_c = ReLU(Σ_k w_kc A_k)

with G_c = ∂s_c/∂A and H_c A the Hessian of s_c with respect to A times A (a Hessian-vector product:
the gradient of ⟨G_c, A⟩ with A held constant, by double backpropagation through the layers after the
target layer). Piecewise-linear layers alone give H_c = 0 (Grad-CAM); the softmax of the score and
the bilinear upsampling do not. Two backward passes per class. Then Up and min-max as every CAM.
"""

from __future__ import annotations

import torch

from .base import Forward
from .cam import GradientCAM
from .registry import register


@register("shapleycam", label="ShapleyCAM")
class ShapleyCAM(GradientCAM):
    """ShapleyCAM: w_kc = mean_ij (∂s_c/∂A − ½ ∂²s_c/∂A² · A)."""

    def weights(self, fwd: Forward) -> torch.Tensor:
        acts = fwd.activations
        assert acts is not None
        constant = acts.detach()
        weights = []
        for j in range(fwd.scores.shape[1]):
            score = fwd.scores[:, j].sum()
            g = hvp = None
            if score.requires_grad:
                (g,) = torch.autograd.grad(score, acts, create_graph=True, allow_unused=True)
            if g is not None and g.requires_grad:
                (hvp,) = torch.autograd.grad(g, acts, grad_outputs=constant, retain_graph=True, allow_unused=True)
            g = torch.zeros_like(constant) if g is None else g.detach()
            hvp = torch.zeros_like(constant) if hvp is None else hvp.detach()
            weights.append((g - 0.5 * hvp).float().mean(dim=(2, 3)))
        fwd.stats.update(forwards=1, backwards=2 * len(weights))
        return torch.stack(weights, dim=-1)  # N×K×C'
