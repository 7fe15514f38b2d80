"""Score-CAM (Wang et al., CVPR-W 2020) for segmentation: every class from one sweep of masked forwards.

For a normalised input x, activations A (K channels, h×w) of the target layer and the region score
s_c of class c (xai.targets):

    H_k  = minmax(Up(A_k))                       bilinear Up to H×W, scaled to [0,1] per channel
    w_kc = s_c(f(x ⊙ H_k)) − s_c(f(x_b))         x_b = 0 (baseline="none": no subtraction)
    L_c  = ReLU(Σ_k w_kc A_k)                    (then Up and min-max, as every method: xai.methods.base)

weights="softmax" replaces w_kc by a softmax over the kept channels (as pytorch-grad-cam and torch-cam
do); weights="centred" by w_kc − mean_k' w_k'c over the kept channels, so that only channels that raise
the class score more than the average channel does count. That removes the activation floor every
channel shares (raw weights are nearly all positive, so raw Score-CAM spreads its energy over the whole
photograph) and makes the baseline irrelevant (subtracting s_c(f(x_b)) shifts every w_kc alike).

A channel with max == min gets w = 0 and costs no forward pass. max_activation_maps N keeps the N
channels of largest spatial variance (Faster Score-CAM), of largest energy mean(A_k²), or a seeded random
subset. memory_format "auto"
runs the masked forwards in whichever layout (contiguous or channels_last) measured faster for this
model, device and input size, once per process. One sweep (K forwards per image, in chunks of
batch_size) scores every class at once; masked inputs exist only chunk by chunk.

On a CPU, call xai.runtime.tune_cpu_allocator() once at the start of the program (the CLIs do): glibc
otherwise returns every freed feature map to the OS, and the masked forwards run up to 2x slower. The
library does not change the allocator of a host program by itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import XAIError
from ..precision import autocast, prefers_channels_last, resolve_precision
from ..targets import Score
from .base import BaseCAM, CAMOptions, Forward, minmax_per_map, not_in_result, upsample
from .registry import register

log = logging.getLogger(__name__)
BASELINES = ("zero", "none")
WEIGHTINGS = ("raw", "softmax", "centred")
CHANNEL_SELECTIONS = ("variance", "random", "energy")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


@dataclass(frozen=True)
class ScoreCAMOptions(CAMOptions):
    baseline: str = "zero"
    weights: str = "raw"
    max_activation_maps: int | None = None
    channel_selection: str = "variance"
    seed: int = 0
    precision: str = "fp32"  # as resolved for the device ("auto" never appears here)
    batch_size: int = not_in_result(32)
    memory_format: str = not_in_result("auto")


@register("scorecam", label="Score-CAM")
class ScoreCAM(BaseCAM):
    """Score-CAM: channel weights measured by masked forward passes, no gradients."""

    options: ScoreCAMOptions

    default_layer = "encoder.layer4"

    def __init__(
        self,
        model: nn.Module,
        target_layer: str | None = "encoder.layer4",
        batch_size: int = 32,
        max_activation_maps: int | None = None,
        score: Score = "prob",
        region: str = "pred",
        baseline: str = "zero",
        weights: str = "raw",
        precision: str = "auto",
        channel_selection: str = "variance",
        seed: int = 0,
        memory_format: str = "auto",
        progress: bool = False,
    ):
        super().__init__(model, target_layer=target_layer, score=score, region=region)
        if int(batch_size) < 1:
            raise XAIError(f"batch_size must be at least 1, got {batch_size}")
        if max_activation_maps is not None and int(max_activation_maps) < 1:
            raise XAIError(f"max_activation_maps must be at least 1, got {max_activation_maps}")
        for name, value, choices in (
            ("baseline", baseline, BASELINES),
            ("weights", weights, WEIGHTINGS),
            ("channel_selection", channel_selection, CHANNEL_SELECTIONS),
            ("memory_format", memory_format, MEMORY_FORMATS),
        ):
            if value not in choices:
                raise XAIError(f"unknown {name} '{value}': choose one of {', '.join(choices)}")
        self.options = ScoreCAMOptions(
            target_layer=self.target_layer,
            score=self._score_name(),
            region=region,
            baseline=baseline,
            weights=weights,
            max_activation_maps=None if max_activation_maps is None else int(max_activation_maps),
            channel_selection=channel_selection,
            seed=int(seed),
            precision=resolve_precision(precision, self.device),
            batch_size=int(batch_size),
            memory_format=memory_format,
        )
        self.progress = progress
        self._channels_last = False
        self._batch: int | None = None  # lowered after an out-of-memory error, for the rest of the run
        self._warned_memory = False

    @property
    def precision(self) -> str:
        return self.options.precision

    def channels_last(self, x: torch.Tensor) -> bool:
        """memory_format "auto": the masked forwards run in the faster layout, measured once (xai.precision)."""
        fmt = self.options.memory_format
        if fmt == "auto":
            example = x[:1].expand(min(4, self.options.batch_size), -1, -1, -1)
            self._channels_last = prefers_channels_last(self.model, example, self.precision)
        else:
            self._channels_last = fmt == "channels_last"
        return self._channels_last

    def weights(self, fwd: Forward) -> torch.Tensor:
        acts = fwd.activations.float()
        baseline = self._baseline_output(fwd)
        selected = self._select_channels(acts)
        w = self._sweep(fwd, acts, selected, baseline)
        if not torch.isfinite(w).all():
            raise XAIError(f"{self.label}: scores overflowed at {self.precision}; use precision fp32")
        if self.options.weights == "softmax":
            w = torch.softmax(w.masked_fill(~selected.unsqueeze(-1), float("-inf")), dim=1)
            w = torch.nan_to_num(w, nan=0.0)
        elif self.options.weights == "centred":
            kept = selected.unsqueeze(-1).float()
            mean = (w * kept).sum(1, keepdim=True) / kept.sum(1, keepdim=True).clamp_min(1)
            w = (w - mean) * kept
        fwd.stats.update(
            forwards=int(selected.sum()),
            kept_channels=selected.sum(1).tolist(),
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
            gen = torch.Generator().manual_seed(self.options.seed)
            order = torch.stack([torch.randperm(k, generator=gen) for _ in range(acts.shape[0])]).to(acts.device)
        keep = torch.zeros_like(varying)
        keep.scatter_(1, order[:, :limit], True)
        return keep & varying

    def _sweep(
        self, fwd: Forward, acts: torch.Tensor, selected: torch.Tensor, baseline: torch.Tensor | None
    ) -> torch.Tensor:
        """w (N×K×C'): one masked forward per selected (image, channel), batch_size at a time (halved on
        out-of-memory errors, CUDA's or the CPU's MemoryError, down to 1).

        With region scores, w = Σ_p R_p · (P_p(x ⊙ H_k) − P_p(x_b)): the baseline is subtracted pixel by
        pixel before the sum, which keeps w accurate when it is small beside s itself (fp32 sums of
        ~10⁵ probabilities carry absolute errors near 1e-3)."""
        x, size, step = fwd.x, (int(fwd.x.shape[-2]), int(fwd.x.shape[-1])), self.options.batch_size
        weights = torch.zeros(*selected.shape, fwd.scores.shape[1], device=x.device)
        base_scores = None
        if baseline is not None and fwd.regions is None:
            base_scores = self.region_scores(baseline, None, [])
        pairs = selected.nonzero()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=pairs.shape[0], desc=f"{self.label} sweep", unit="map", leave=False)
        channels_last = self._channels_last
        start, step = 0, self._batch or step
        try:
            while start < pairs.shape[0]:
                img, ch = pairs[start : start + step].unbind(1)
                try:
                    masked = x[img] * minmax_per_map(upsample(acts[img, ch].unsqueeze(1), size))
                    if channels_last:
                        masked = masked.contiguous(memory_format=torch.channels_last)
                    with autocast(self.precision, x.device):
                        _, P = self.forward_scores(masked)
                except (torch.OutOfMemoryError, MemoryError) as exc:
                    step = self._halve(step, exc, x.device)
                    continue
                P = P.float()
                if fwd.regions is None:
                    s = self.region_scores(P, None, [])
                    weights[img, ch] = s - base_scores if base_scores is not None else s
                else:
                    delta = P - baseline if baseline is not None else P
                    weights[img, ch] = self.region_scores(delta, fwd.regions, fwd.classes, img)
                start += img.shape[0]
                if bar is not None:
                    bar.update(img.shape[0])
        finally:
            if bar is not None:
                bar.close()
        return weights

    def _halve(self, step: int, exc: BaseException, device: torch.device) -> int:
        """Out of memory: retry the chunk at half the batch (kept for later samples), down to 1; say so once."""
        if step == 1:
            raise XAIError(
                f"{self.label}: out of memory even with one masked image per forward pass "
                f"({type(exc).__name__}); use a smaller --img_size or another device"
            ) from None
        if device.type == "cuda":
            torch.cuda.empty_cache()
        self._batch = step // 2
        if not self._warned_memory:
            log.warning(
                "out of memory at %d masked images per forward pass: continuing with smaller batches "
                "(set --batch_size %d to avoid the retries)",
                step,
                self._batch,
            )
            self._warned_memory = True
        return self._batch
