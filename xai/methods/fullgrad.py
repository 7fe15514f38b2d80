"""FullGrad (Srinivas & Fleuret, NeurIPS 2019; pytorch-grad-cam 1.5.7's FullGrad): the input-gradient
times the input plus every bias's gradient times the bias, each post-processed and summed.

For the region score s_c, the input x (3 channels) and every layer l with a bias b_l (K_l channels) whose
output z_l (h_l×w_l) the bias is added to, ∂s_c/∂b_l at a cell is ∂s_c/∂z_l there, and

    A_c = Σ_ch ψ(∂s_c/∂x_ch ⊙ x_ch) + Σ_l Σ_k ψ(b_l,k · ∂s_c/∂z_l,k)
    ψ(m) = Up(minmax(|m|))       minmax over the map's own h×w (each channel alone), bilinear Up to H×W

and then min-max as every method. The biases are pytorch-grad-cam's (from the authors' code): each
`nn.Conv2d` with a bias, and each `nn.BatchNorm2d`'s implicit bias in eval mode, the constant of
γ(z − μ)/√(σ² + ε) + β: b = β − μ γ / √(σ² + ε). Their gradients come from tensor hooks on the layers'
outputs, which give the gradient of the output before any in-place operation after it (ResNet's
in-place ReLU and residual sum), as theirs. One backward pass per class, from one forward pass.

Where this differs from pytorch-grad-cam: ψ's min-max has no epsilon (theirs divides by max + 1e-7, a
map constant on its cells is 0 here and there); the channels of a layer are summed before their one
upsampling (the same, as Up is linear); subclasses of Conv2d and BatchNorm2d count (theirs takes the
exact types only); and the input term's min-max runs over the photograph's pixels V (theirs: every pixel,
the same without padding). GroupNorm's β (the FPN decoder's segmentation blocks) is left out, as theirs.
The authors' own code (fullgrad-saliency) min-maxes a layer's channels jointly and upsamples with
align_corners=True; the per-channel scaling here is pytorch-grad-cam's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..layers import ActivationCapture
from ..maps import minmax
from .base import Explainer, Forward
from .cam import upsample
from .registry import register


def bias_layers(model: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """(module, bias K) of every Conv2d with a bias and every BatchNorm2d with an affine bias and running
    statistics (its implicit bias β − μγ/√(σ² + ε)), in the model's module order."""
    found: list[tuple[nn.Module, torch.Tensor]] = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            found.append((m, m.bias.detach().float()))
        elif isinstance(m, nn.BatchNorm2d) and m.bias is not None and m.running_mean is not None:
            assert m.running_var is not None
            scale = m.weight.detach().float() / torch.sqrt(m.running_var.float() + m.eps)
            found.append((m, m.bias.detach().float() - m.running_mean.float() * scale))
    return found


def channel_minmax(m: torch.Tensor) -> torch.Tensor:
    """Each channel of m (N×K×h×w) scaled to [0, 1] over its own cells (a constant channel: 0)."""
    lo = m.amin(dim=(2, 3), keepdim=True)
    span = m.amax(dim=(2, 3), keepdim=True) - lo
    return torch.where(span > 0, (m - lo) / span.clamp_min(torch.finfo(m.dtype).tiny), torch.zeros_like(m))


class BiasGradients(ActivationCapture):
    """Forward hooks on every bias layer that hook each output's gradient: during a backward pass,
    Σ_k minmax(|b_k · ∂s/∂z_k|), upsampled to `size`, is added to `total` (N×1×H×W)."""

    def __init__(self, layers: list[tuple[nn.Module, torch.Tensor]]):
        self.value: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.size = (0, 0)
        self._handles = [m.register_forward_hook(self._forward_hook(b)) for m, b in layers]
        self.count = len(layers)

    def _forward_hook(self, bias: torch.Tensor) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: tuple, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda g: self._add(bias, g))

        return hook

    def _add(self, bias: torch.Tensor, grad: torch.Tensor) -> None:
        if self.total is not None:
            m = channel_minmax((bias.to(grad.device)[None, :, None, None] * grad.float()).abs()).sum(1, keepdim=True)
            self.total += upsample(m, self.size)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@register("fullgrad", label="FullGrad")
class FullGrad(Explainer):
    """FullGrad: ψ(input-gradient ⊙ input) plus ψ(bias-gradient ⊙ bias) of every conv and batch-norm bias."""

    family = "attribution"
    uses_gradients = True

    def capture(self) -> ActivationCapture:
        self.hooks = BiasGradients(bias_layers(self.model))
        return self.hooks

    def forward(self, x: torch.Tensor, *args: Any) -> Forward:
        return super().forward(x.detach().requires_grad_(True), *args)

    def attribute(self, fwd: Forward) -> torch.Tensor:
        x = fwd.x
        hooks, (n, _, h, w) = self.hooks, x.shape
        hooks.size = (h, w)
        maps, last = [], fwd.scores.shape[1] - 1
        for j in range(fwd.scores.shape[1]):
            hooks.total = torch.zeros(n, 1, h, w, device=x.device)
            score = fwd.scores[:, j].sum()
            grad = None
            if score.requires_grad:
                (grad,) = torch.autograd.grad(score, x, retain_graph=j < last, allow_unused=True)
            grad = torch.zeros_like(x) if grad is None else grad.detach()
            valid = fwd.valid[:, None].expand_as(x)
            inputs = minmax((grad * x.detach()).abs().float(), valid).sum(1, keepdim=True)  # each channel on V
            maps.append(inputs + hooks.total)
        hooks.total = None
        fwd.stats.update(forwards=1, backwards=len(maps), layers=hooks.count)
        return torch.cat(maps, dim=1)
