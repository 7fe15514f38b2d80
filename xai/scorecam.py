"""Score-CAM for segmentation models, every class from one batched sweep of masked forward passes.

For a normalised input x, activations A (K channels, h×w) of the target layer on x, and the score s_c
of class c (xai.targets):

    H_k  = minmax(Up(A_k))                       bilinear Up to H×W, scaled to [0,1] per channel
    w_kc = s_c(f(x ⊙ H_k)) − s_c(f(x_b))         x_b = 0 (baseline="none": no subtraction)
    L_c  = ReLU(Up(Σ_k w_kc A_k))                combined at layer resolution, upsampled once

A channel with max == min gets w = 0 and costs no forward pass. One sweep (K forwards per image, in
chunks of batch_size) scores every requested class at once; masked inputs exist only chunk by chunk.
"""
from __future__ import annotations

import time
from typing import Sequence

import torch
from torch import nn

from .cam import BaseCAM
from .errors import XAIError
from .layers import preserved_state
from .precision import autocast, resolve_precision, wants_channels_last
from .targets import CAMResult, Score, minmax_per_map, region_score, upsample

BASELINES = ("zero", "none")
WEIGHTINGS = ("raw", "softmax")
CHANNEL_SELECTIONS = ("variance", "random")


class ScoreCAM(BaseCAM):
    """Score-CAM (Wang et al., CVPR-W 2020) for segmentation models.

    max_activation_maps N keeps the N channels of largest spatial variance of A_k (Faster Score-CAM),
    or a seeded random subset with channel_selection="random". weights="softmax" replaces w_kc by a
    softmax over the kept channels, as pytorch-grad-cam and torch-cam do. A class whose region is empty
    has s_c ≡ 0 and gets an all-zero map, with either weighting.
    """

    method = "Score-CAM"

    def __init__(self, model: nn.Module, target_layer: str | None = "encoder.layer4", batch_size: int = 32,
                 max_activation_maps: int | None = None, score: Score = "prob", region: str = "pred",
                 baseline: str = "zero", weights: str = "raw", precision: str = "auto",
                 channel_selection: str = "variance", seed: int = 0, progress: bool = False):
        super().__init__(model, target_layer=target_layer, score=score, region=region)
        if int(batch_size) < 1:
            raise XAIError(f"batch_size must be at least 1, got {batch_size}")
        if max_activation_maps is not None and int(max_activation_maps) < 1:
            raise XAIError(f"max_activation_maps must be at least 1, got {max_activation_maps}")
        for name, value, choices in (("baseline", baseline, BASELINES), ("weights", weights, WEIGHTINGS),
                                     ("channel_selection", channel_selection, CHANNEL_SELECTIONS)):
            if value not in choices:
                raise XAIError(f"unknown {name} '{value}': choose one of {', '.join(choices)}")
        self.batch_size = int(batch_size)
        self.max_activation_maps = None if max_activation_maps is None else int(max_activation_maps)
        self.baseline = baseline
        self.weights = weights
        self.precision = resolve_precision(precision, self.device)
        self.channel_selection = channel_selection
        self.seed = seed
        self.progress = progress

    def explain(self, x: torch.Tensor, classes: Sequence[int] | None = None, gt: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> CAMResult:
        x = self._check_input(x)
        device = self.device
        channels_last = wants_channels_last(self.precision, device)
        with preserved_state(self.model, channels_last=channels_last), torch.inference_mode():
            t0 = time.perf_counter()
            output, acts, P = self._forward(x, capture_layer=True)
            acts = acts.float()
            classes = self._classes(classes, P.shape[1] if not callable(self.score) else self._score(P, None).shape[1])
            regions = None if callable(self.score) else self._regions(output, gt, classes, valid)
            base = self._baseline_scores(x, regions, classes)
            selected = self._select_channels(acts)
            weights, n_forwards = self._sweep(x, acts, selected, regions, classes, base, channels_last)
            if not torch.isfinite(weights).all():
                raise XAIError(f"{self.method}: scores overflowed at {self.precision}; use precision fp32")
            empty = (regions.flatten(2).sum(-1) == 0) if regions is not None else torch.zeros(
                weights.shape[0], weights.shape[2], dtype=torch.bool, device=weights.device)
            if self.weights == "softmax":
                weights = torch.softmax(weights.masked_fill(~selected.unsqueeze(-1), float("-inf")), dim=1)
                weights = torch.nan_to_num(weights, nan=0.0).masked_fill(empty.unsqueeze(1), 0.0)
            combined = torch.einsum("nkc,nkhw->nchw", weights, acts)
            raw = torch.relu(upsample(combined, tuple(x.shape[-2:])))
            maps = minmax_per_map(raw)
            stats = {"forwards": n_forwards, "channels": int(acts.shape[1]),
                     "kept_channels": selected.sum(1).tolist(), "precision": self.precision,
                     "seconds": time.perf_counter() - t0}
        return CAMResult(maps=maps.float(), raw=raw.float(), weights=weights.float(), classes=classes,
                         empty=empty, region=None if callable(self.score) else self.region,
                         target_layer=self.target_layer, prediction=output.argmax(1).detach(), stats=stats)

    def _score(self, P: torch.Tensor, regions: torch.Tensor | None, classes: Sequence[int] = (),
               image_index: torch.Tensor | None = None) -> torch.Tensor:
        if callable(self.score):
            s = self.score(P)
            if not isinstance(s, torch.Tensor) or s.dim() != 2 or s.shape[0] != P.shape[0]:
                raise XAIError(f"the score callable must return a B×C' tensor, got {getattr(s, 'shape', type(s))}")
            return s.float()
        return region_score(P, regions, classes, image_index)

    def _baseline_scores(self, x: torch.Tensor, regions: torch.Tensor | None, classes: list[int]) -> torch.Tensor:
        """s_c(f(x_b)) per image, x_b = 0: one forward of a zero image shared by all images."""
        n = x.shape[0]
        if self.baseline == "none":
            width = len(classes)
            return torch.zeros(n, width, device=x.device)
        zero = torch.zeros_like(x[:1])
        with autocast(self.precision, x.device):
            _, _, P0 = self._forward(zero, capture_layer=False)
        P0 = P0.float()
        if callable(self.score):
            return self._score(P0, None).expand(n, -1)
        return self._score(P0.expand(n, -1, -1, -1), regions, classes, torch.arange(n, device=x.device))

    def _select_channels(self, acts: torch.Tensor) -> torch.Tensor:
        """N×K bool: the channels that get a forward pass (non-constant, and among the kept N)."""
        flat = acts.flatten(2)
        varying = flat.amax(-1) > flat.amin(-1)
        k = acts.shape[1]
        limit = self.max_activation_maps
        if limit is None or limit >= k:
            return varying
        if self.channel_selection == "variance":
            order = flat.var(-1, unbiased=False).argsort(dim=1, descending=True, stable=True)
        else:
            gen = torch.Generator().manual_seed(self.seed)
            order = torch.stack([torch.randperm(k, generator=gen) for _ in range(acts.shape[0])]).to(acts.device)
        keep = torch.zeros_like(varying)
        keep.scatter_(1, order[:, :limit], True)
        return keep & varying

    def _sweep(self, x: torch.Tensor, acts: torch.Tensor, selected: torch.Tensor, regions: torch.Tensor | None,
               classes: list[int], base: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, int]:
        """w (N×K×C'): one masked forward per selected (image, channel), batch_size at a time."""
        n, k = selected.shape
        size = tuple(x.shape[-2:])
        weights = torch.zeros(n, k, base.shape[1], device=x.device)
        pairs = selected.nonzero()
        chunks = range(0, pairs.shape[0], self.batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"{self.method} sweep", unit="batch", leave=False)
        for start in chunks:
            img, ch = pairs[start:start + self.batch_size].unbind(1)
            masks = minmax_per_map(upsample(acts[img, ch].unsqueeze(1), size))
            masked = x[img] * masks
            if channels_last:
                masked = masked.contiguous(memory_format=torch.channels_last)
            with autocast(self.precision, x.device):
                _, _, P = self._forward(masked, capture_layer=False)
            s = self._score(P.float(), regions, classes, img)
            weights[img, ch] = s - base[img]
        return weights, int(pairs.shape[0])
