"""Score-CAM (Wang et al., CVPR-W 2020) for segmentation: every class from one sweep of masked forwards.

For a normalised input x, activations A (K channels, h×w) of the target layer and the region score
s_c of class c (xai.targets):

    H_k  = minmax(Up(A_k))                       bilinear Up to H×W, scaled to [0,1] per channel
    w_kc = s_c(f(x ⊙ H_k)) − s_c(f(x_b))         x_b = 0 (baseline="none": no subtraction)
    L_c  = ReLU(Σ_k w_kc A_k)                    (then Up and min-max, as every CAM: xai.methods.cam)

weights="softmax" replaces w_kc by a softmax over the kept channels (as pytorch-grad-cam and torch-cam
do); weights="centred" (the default, chosen by the evidence in docs/evidence.md; the profile "paper" is raw
weights with the zero baseline) by w_kc − mean_k' w_k'c over the kept channels, so that only channels that raise
the class score more than the average channel does count. That removes the activation floor every
channel shares (raw weights are nearly all positive, so raw Score-CAM spreads its energy over the whole
photograph) and makes the baseline irrelevant (subtracting s_c(f(x_b)) shifts every w_kc alike).

A variant scores each mask as N copies M_i = g_i(H_k) (SS-CAM: H_k + noise, xai.methods.sscam; IS-CAM:
H_k at N scales, xai.methods.iscam) and takes w_kc = mean_i s_c(f(x ⊙ M_i)) − s_c(f(x_b)), then the same
weighting; Score-CAM is one copy, M_1 = H_k (`mask_copies`).

A channel with max == min gets w = 0 and costs no forward pass. max_activation_maps N keeps the N
channels of largest spatial variance (Faster Score-CAM), of largest energy mean(A_k²), or a seeded random
subset. memory_format "auto" runs the masked forwards in whichever layout (contiguous or
channels_last) measured faster for this model, device and input size, once per process. One sweep
(K forwards per image, in chunks of batch_size, halved on out-of-memory: xai.batching) scores every
class at once; masked inputs exist only chunk by chunk, and nothing in the sweep waits for the device.

On a CPU, call xai.runtime.tune_cpu_allocator() once at the start of the program (the CLIs do): glibc
otherwise returns every freed feature map to the OS, and the masked forwards run up to 2x slower. The
library does not change the allocator of a host program by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..batching import BatchOptions
from ..errors import XAIError
from ..maps import minmax
from ..options import option
from ..precision import PRECISIONS, autocast, prefers_channels_last, resolve_precision
from ..syncs import to_host
from .base import Forward
from .cam import BaseCAM, CAMOptions, upsample
from .registry import register

BASELINES = ("zero", "none")
WEIGHTINGS = ("centred", "raw", "softmax")
CHANNEL_SELECTIONS = ("variance", "random", "energy")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")
MaskCopy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (masks B×1×H×W, copy numbers B) -> B×1×H×W


@dataclass(frozen=True)
class ScoreCAMOptions(BatchOptions, CAMOptions):
    baseline: str = option(
        "zero",
        "with raw or softmax weights: subtract the score of a zero image (zero: the dataset's mean colour) "
        "or not (none); no effect with centred weights",
        choices=BASELINES,
    )
    weights: str = option(
        "centred",
        "channel weights: centred (minus their mean over the channels; no baseline needed), raw (the paper's) "
        "or softmax",
        choices=WEIGHTINGS,
    )
    max_activation_maps: int | None = option(
        None,
        "keep only N activation maps, chosen by channel_selection (faster; all: no limit)",
        key="maps",
        minimum=1,
        null_words=("all", "none"),
        approximates=True,
    )
    channel_selection: str = option(
        "variance",
        "which channels max_activation_maps keeps: largest spatial variance (Faster Score-CAM), largest "
        "energy mean(A²), or a seeded random subset",
        choices=CHANNEL_SELECTIONS,
        key="select",
        approximates=True,
    )
    seed: int = option(
        0, "seed of the random channel selection (and of SS-CAM's noise)", minimum=0, cli=False, approximates=True
    )
    precision: str = option(
        "auto",
        "the masked forwards: fp32 (IEEE, TF32 off), tf32 (TensorFloat-32 on GPUs that have it, else fp32), "
        "bf16 or fp16; auto: bf16 where the hardware runs it natively (CUDA with bf16, CPUs with "
        "AVX512-BF16/AMX), else fp32",
        choices=PRECISIONS,
    )
    memory_format: str = option(
        "auto",
        "layout of the masked forwards: the faster one measured (auto), contiguous or channels_last",
        choices=MEMORY_FORMATS,
        result=False,
        cli=False,
    )

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"paper": {"weights": "raw", "baseline": "zero"}}


@register("scorecam", label="Score-CAM")
class ScoreCAM(BaseCAM):
    """Score-CAM: channel weights measured by masked forward passes, no gradients."""

    Options = ScoreCAMOptions
    options: ScoreCAMOptions
    batch_unit = "masked images"

    def configure(self, options: Any) -> Any:
        options = super().configure(options)
        options = options.replace(precision=resolve_precision(options.precision, self.device))
        self._channels_last = False
        return options

    @property
    def precision(self) -> str:
        return self.options.precision

    def channels_last(self, x: torch.Tensor) -> bool:
        """memory_format "auto": the masked forwards run in the faster layout, measured once (xai.precision)."""
        fmt = self.options.memory_format
        if fmt == "auto":
            example = x[:1].expand(min(4, self.options.batch_size or 4), -1, -1, -1)
            self._channels_last = prefers_channels_last(self.model, example, self.precision)
        else:
            self._channels_last = fmt == "channels_last"
        return self._channels_last

    def batch_precision(self) -> Any:
        return autocast(self.precision, self.device)

    def mask_copies(self, size: tuple[int, int], device: torch.device) -> tuple[int, MaskCopy]:
        """(N, g): each mask H_k (B×1×H×W) is scored as N copies g(H_k, i) (i: B copy numbers in [0, N)),
        and w_kc is the mean of their scores. Score-CAM: one copy, H_k itself."""
        return 1, lambda masks, copy: masks

    def weights(self, fwd: Forward) -> torch.Tensor:
        assert fwd.activations is not None
        acts = fwd.activations.float()
        baseline = self._baseline_output(fwd)
        selected = self._select_channels(acts)
        kept_channels = [int(k) for k in to_host(selected.sum(1))]  # one transfer: the sweep's length
        copies, perturb = self.mask_copies((int(fwd.x.shape[-2]), int(fwd.x.shape[-1])), fwd.x.device)
        w = self._sweep(fwd, acts, selected, sum(kept_channels), baseline, copies, perturb)
        if not to_host(torch.isfinite(w).all()):
            raise XAIError(f"{self.label}: scores overflowed at {self.precision}; use precision fp32")
        if self.options.weights == "softmax":
            w = torch.softmax(w.masked_fill(~selected.unsqueeze(-1), float("-inf")), dim=1)
            w = torch.nan_to_num(w, nan=0.0)
        elif self.options.weights == "centred":
            kept = selected.unsqueeze(-1).float()
            mean = (w * kept).sum(1, keepdim=True) / kept.sum(1, keepdim=True).clamp_min(1)
            w = (w - mean) * kept
        fwd.stats.update(
            forwards=sum(kept_channels) * copies,
            kept_channels=kept_channels,
            precision=self.precision,
            channels_last=self._channels_last,
        )
        return w

    def _baseline_output(self, fwd: Forward) -> torch.Tensor | None:
        """P(x_b) (1×C×H×W), x_b = 0: one forward of a zero image shared by all images (None: no baseline)."""
        if self.options.baseline == "none":
            return None
        with autocast(self.precision, fwd.x.device):
            _, P0 = self.forward_scores(torch.zeros_like(fwd.x[:1]))
        return P0.float()

    def _select_channels(self, acts: torch.Tensor) -> torch.Tensor:
        """N×K bool: the channels that get a forward pass (non-constant, and among the kept N)."""
        flat = acts.flatten(2)
        varying = flat.amax(-1) > flat.amin(-1)
        k, limit = acts.shape[1], self.options.max_activation_maps
        if limit is None or limit >= k:
            return varying
        if self.options.channel_selection == "variance":
            order = flat.var(-1, unbiased=False).argsort(dim=1, descending=True, stable=True)
        elif self.options.channel_selection == "energy":  # mean of A_k²: what a channel can add to Σ_k w_kc A_k
            order = flat.square().mean(-1).argsort(dim=1, descending=True, stable=True)
        else:
            # one generator per image, seeded alike: an image's channels do not depend on the others in the call
            draws = [torch.randperm(k, generator=torch.Generator().manual_seed(self.options.seed)) for _ in acts]
            order = torch.stack(draws).to(acts.device)
        keep = torch.zeros_like(varying)
        keep.scatter_(1, order[:, :limit], True)
        return keep & varying

    def _sweep(
        self,
        fwd: Forward,
        acts: torch.Tensor,
        selected: torch.Tensor,
        count: int,
        baseline: torch.Tensor | None,
        copies: int = 1,
        perturb: MaskCopy | None = None,
    ) -> torch.Tensor:
        """w (N×K×C'): the mean over `copies` masked forwards per selected (image, channel), `count` pairs,
        count · copies forwards in chunks (xai.batching); forward t is pair t // copies, copy t % copies.

        With region scores, w = Σ_p R_p · (P_p(x ⊙ M) − P_p(x_b)): the baseline is subtracted pixel by
        pixel before the sum, which keeps w accurate when it is small beside s itself (fp32 sums of
        ~10⁵ probabilities carry absolute errors near 1e-3). Each copy's score is kept (count×copies×C')
        and averaged at the end, so that w does not depend on the chunks."""
        x, size = fwd.x, (int(fwd.x.shape[-2]), int(fwd.x.shape[-1]))
        weights = torch.zeros(*selected.shape, fwd.scores.shape[1], device=x.device)
        scores = torch.zeros(count * copies, fwd.scores.shape[1], device=x.device)
        base_scores = self.region_scores(baseline, None, []) if baseline is not None and fwd.regions is None else None
        # the selected (image, channel) pairs in raster order, as nonzero() gives them, without its host look
        flat = torch.argsort(selected.flatten().to(torch.uint8), descending=True, stable=True)[:count]
        pairs = torch.stack([flat // selected.shape[1], flat % selected.shape[1]], 1)

        def chunk(a: int, b: int) -> None:
            t = torch.arange(a, b, device=x.device)
            img, ch = pairs[t // copies].unbind(1)
            masks = minmax(upsample(acts[img, ch].unsqueeze(1), size))
            masked = x[img] * (masks if perturb is None else perturb(masks, t % copies))
            if self._channels_last:
                masked = masked.contiguous(memory_format=torch.channels_last)
            with autocast(self.precision, x.device):
                _, P = self.forward_scores(masked, batched=True)
            P = P.float()
            if fwd.regions is None:
                s = self.region_scores(P, None, [])
                scores[a:b] = s - base_scores if base_scores is not None else s
            else:
                delta = P - baseline if baseline is not None else P
                scores[a:b] = self.region_scores(delta, fwd.regions, fwd.classes, img)

        self.batches.for_each(count * copies, chunk, self.sweep_bar(count * copies, "map"))
        weights[pairs[:, 0], pairs[:, 1]] = scores.view(count, copies, scores.shape[1]).mean(1)
        return weights
