"""Grad-CAM for segmentation models, every class from one forward pass.

With A (K×h×w) the target layer's activations and s_c the region score of class c (xai.targets):

    α_kc = mean_{i,j} ∂s_c/∂A_k[i,j]
    L_c  = minmax(Up(ReLU(Σ_k α_kc A_k)))        ReLU at layer resolution, then bilinear Up

One forward pass; each class's gradient is taken from the same graph (retain_graph), and the graph is
cut at the target layer, so each backward pass runs only through the layers after it.
"""
from __future__ import annotations

import time
from typing import Sequence

import torch

from .cam import BaseCAM
from .errors import XAIError
from .layers import preserved_state
from .targets import CAMResult, minmax_per_map, region_score, upsample


class _LeafActivation:
    """Forward hook that hands the rest of the network a grad-requiring leaf copy of the output."""

    def __init__(self, module: torch.nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        if isinstance(output, (tuple, list)):
            raise XAIError("Grad-CAM needs a target layer whose output is a single tensor")
        self.value = output.detach().requires_grad_(True)
        return self.value

    def remove(self) -> None:
        self._handle.remove()


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017) with the region scoring of ScoreCAM."""

    method = "Grad-CAM"

    def explain(self, x: torch.Tensor, classes: Sequence[int] | None = None, gt: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> CAMResult:
        x = self._check_input(x)
        if torch.is_inference_mode_enabled():
            raise XAIError("Grad-CAM needs gradients: call it outside torch.inference_mode()")
        t0 = time.perf_counter()
        with preserved_state(self.model), torch.enable_grad():
            leaf = _LeafActivation(self.layer)
            try:
                output, _, P = self._forward(x, capture_layer=False)
            finally:
                leaf.remove()
            acts = leaf.value
            if acts is None:
                raise XAIError(f"target layer '{self.target_layer}' did not run in the forward pass")
            if callable(self.score):
                scores = self.score(P)
                if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != x.shape[0]:
                    raise XAIError("the score callable must return a B×C' tensor")
                classes, regions = list(range(scores.shape[1])), None
            else:
                classes = self._classes(classes, P.shape[1])
                regions = self._regions(output.detach(), gt, classes, valid)
                scores = region_score(P.float(), regions, classes)
            alphas = []
            for j in range(scores.shape[1]):
                if not scores[:, j].requires_grad:
                    alphas.append(torch.zeros(acts.shape[:2], device=acts.device))
                    continue
                (grad,) = torch.autograd.grad(scores[:, j].sum(), acts, retain_graph=j < scores.shape[1] - 1,
                                              allow_unused=True)
                alphas.append(torch.zeros(acts.shape[:2], device=acts.device) if grad is None
                              else grad.float().mean(dim=(2, 3)))
            weights = torch.stack(alphas, dim=2)  # N×K×C'
            acts = acts.detach().float()
        cam = torch.relu(torch.einsum("nkc,nkhw->nchw", weights, acts))
        raw = upsample(cam, tuple(x.shape[-2:]))
        maps = minmax_per_map(raw)
        empty = (regions.flatten(2).sum(-1) == 0) if regions is not None else torch.zeros(
            maps.shape[:2], dtype=torch.bool, device=maps.device)
        return CAMResult(maps=maps.detach(), raw=raw.detach(), weights=weights.detach(), classes=classes,
                         empty=empty, region=None if callable(self.score) else self.region,
                         target_layer=self.target_layer, prediction=output.argmax(1).detach(),
                         stats={"forwards": 1, "backwards": len(classes), "seconds": time.perf_counter() - t0})
