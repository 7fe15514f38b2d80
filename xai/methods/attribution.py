"""The attribution family: gradients of the region score with respect to the input, through captum.

For each explained class c the target is its region score s_c (sum over R_c of P_c, the regions fixed
from the unperturbed prediction), and captum's attribution a (3×H×W) of s_c gives

    A_c = Σ_channels a                   then the positive part (or |·| with absolute) and min-max over the
                                         photograph, as every method

A method is its captum algorithm (`captum_class`) and the keywords it takes (`captum_arguments`).
`nt_samples > 0` wraps it in captum's NoiseTunnel (SmoothGrad: the mean over nt_samples noisy copies
with noise N(0, nt_stdev²) in normalised units; smoothgrad_sq, vargrad). Images are explained one at a
time (every row of captum's expanded batches then shares the image's regions); captum's random parts
(GradientSHAP's baselines, the noise) are seeded and leave the global generators as they were.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..options import option
from ..runtime import seeded
from .base import Explainer, Forward
from .perturbation import PerturbationOptions

__all__ = ["AttributionOptions", "CaptumAttribution"]
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


@dataclass(frozen=True)
class AttributionOptions(PerturbationOptions):
    absolute: bool = option(False, "take the absolute attribution instead of its positive part", cli=False)
    nt_samples: int = option(0, "SmoothGrad: average over N noisy copies of the input (0: off)", minimum=0)
    nt_stdev: float = option(0.15, "SmoothGrad: the noise's standard deviation, in normalised units", minimum=0.0)
    nt_type: str = option("smoothgrad", "SmoothGrad: smoothgrad, smoothgrad_sq or vargrad", choices=NT_TYPES)
    seed: int = option(0, "seed of the method's random parts", minimum=0, cli=False)


def captum_algorithm(name: str, forward: Any) -> Any:
    """captum.attr.<name>(forward): an attribution algorithm of captum over a forward function."""
    return getattr(importlib.import_module("captum.attr"), name)(forward)


class CaptumAttribution(Explainer):
    """Attributions of captum's gradient algorithms, one target class at a time."""

    family = "attribution"
    uses_gradients = True
    batch_unit = "images"  # captum's internal batches (Integrated Gradients' path points, SmoothGrad's copies)
    Options = AttributionOptions
    options: AttributionOptions

    captum_class: ClassVar[str]  # the name of the captum.attr algorithm
    captum_batches: ClassVar[bool] = False  # True: the algorithm batches its own inputs (internal_batch_size)

    def uses_batches(self) -> bool:
        """Only an algorithm that batches its inputs, or SmoothGrad's copies, take batch_size."""
        return self.captum_batches or self.options.nt_samples > 0

    def captum_method(self, forward: Any) -> Any:
        """The captum attribution object over `forward` (B×3×H×W -> B scores)."""
        return captum_algorithm(self.captum_class, forward)

    def captum_arguments(self, x: torch.Tensor, fwd: Forward, n: int, batch_size: int) -> dict[str, Any]:
        """Keywords of captum's attribute() for image n (baselines, steps, ...), batch_size images per
        forward pass where the algorithm batches its own inputs."""
        return {}

    def positive(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.abs() if self.options.absolute else torch.relu(raw)

    def _attribution(
        self, x: torch.Tensor, fwd: Forward, n: int, j: int, score: Any, calls: list[int], counted: int, size: int
    ) -> torch.Tensor:
        """captum's attribution of class j's score on image n, `size` images per forward where it batches."""
        from captum.attr import NoiseTunnel

        calls[0] = counted  # a retry after out-of-memory counts its images once
        method = self.captum_method(score)
        kwargs = self.captum_arguments(x, fwd, n, size)
        if self.options.nt_samples:
            method = NoiseTunnel(method)
            kwargs.update(
                nt_type=self.options.nt_type,
                nt_samples=self.options.nt_samples,
                nt_samples_batch_size=size,
                stdevs=self.options.nt_stdev,
            )
        with seeded(self.options.seed + j, x.device):
            return method.attribute(x[n : n + 1].clone().requires_grad_(True), **kwargs)

    def attribute(self, fwd: Forward) -> torch.Tensor:
        x = fwd.x.detach()
        out = torch.zeros(x.shape[0], len(fwd.classes), *x.shape[-2:], device=x.device)
        calls = [0]
        for n in range(x.shape[0]):
            for j in range(len(fwd.classes)):
                regions = None if fwd.regions is None else fwd.regions[n]
                score = self.class_score(regions, fwd.classes, j, calls, image=n)
                attribution = functools.partial(self._attribution, x, fwd, n, j, score, calls, calls[0])
                a = self.batches.run(attribution) if self.uses_batches() else attribution(1)
                out[n, j] = a.detach()[0].sum(0)
        fwd.stats.update(forwards=calls[0] + 1)
        return out
