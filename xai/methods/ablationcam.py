"""Ablation-CAM (Desai & Ramaswamy, WACV 2020): a channel's weight is the share of the class score lost
when the channel is zeroed; gradient-free, every class from one sweep.

    w_kc = (s_c(A) − s_c(A with A_k = 0)) / s_c(A)      (0 where s_c(A) = 0)
    L_c  = ReLU(Σ_k w_kc A_k)

Each ablated copy runs only the layers after the target layer, on the activations cached from the
forward pass of x, where the model lets that be done exactly: for smp models at `decoder` that is the
segmentation head alone (checked once per call: head(A) must reproduce the model's output). Elsewhere
(remainder="full", or another layer) the whole model runs with a hook that zeroes the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..batching import BatchOptions
from ..options import option
from ..syncs import to_host
from .base import Forward
from .cam import BaseCAM, CAMOptions
from .registry import register

REMAINDERS = ("auto", "full")


@dataclass(frozen=True)
class AblationCAMOptions(BatchOptions, CAMOptions):
    remainder: str = option(
        "auto",
        "what runs per ablated channel: auto (the layers after the target layer on cached features where "
        "exact: the head at smp's decoder) or full (the whole model)",
        choices=REMAINDERS,
        result=False,
    )


@register("ablationcam", label="Ablation-CAM")
class AblationCAM(BaseCAM):
    """Ablation-CAM: channel weights from the score each zeroed channel removes."""

    Options = AblationCAMOptions
    options: AblationCAMOptions
    batch_unit = "ablated copies"

    def _head(self, fwd: Forward) -> Any:
        """The layers after the target layer as one callable on its output, or None (run the whole model)."""
        head = getattr(self.model, "segmentation_head", None)
        if self.options.remainder != "auto" or self.target_layer != "decoder" or head is None:
            return None
        assert fwd.activations is not None
        if not to_host(torch.isclose(head(fwd.activations[:1]), fwd.output[:1], rtol=1e-4, atol=1e-5).all()):
            return None  # the model does more after its decoder than its head: ablate in the full model
        return head

    def weights(self, fwd: Forward) -> torch.Tensor:
        assert fwd.activations is not None
        acts = fwd.activations.detach()
        n, k = acts.shape[:2]
        head = self._head(fwd)
        lost = torch.zeros(n, k, len(fwd.classes), device=acts.device)

        def chunk(a: int, b: int) -> None:
            rows = torch.arange(a, b, device=acts.device)
            img, ch = rows // k, rows % k
            keep = torch.ones(b - a, k, 1, 1, device=acts.device)
            keep[torch.arange(b - a, device=acts.device), ch] = 0
            if head is not None:
                _, P = self.forward_scores(acts[img] * keep, through=head, batched=True)
            else:
                hook = self.layer.register_forward_hook(lambda _m, _i, out: out * keep)
                try:
                    _, P = self.forward_scores(fwd.x[img])
                finally:
                    hook.remove()
            lost[img, ch] = fwd.scores.detach()[img] - self.region_scores(P.float(), fwd.regions, fwd.classes, img)

        self.batches.for_each(n * k, chunk, self.sweep_bar(n * k, "channel"))
        s = fwd.scores.detach().unsqueeze(1)  # N×1×C'
        fwd.stats.update(forwards=1 + n * k, cached_features=head is not None)
        return torch.where(s != 0, lost / torch.where(s != 0, s, torch.ones_like(s)), torch.zeros_like(lost))
