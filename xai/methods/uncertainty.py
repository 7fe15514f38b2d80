"""Uncertainty by MC dropout (Gal & Ghahramani, ICML 2016), or by test-time flips where a model has no dropout.

T stochastic forward passes of x (only the model's dropout layers in train mode, batch-norm and the
rest in eval mode; sampling="flips": the four horizontal/vertical flips, mapped back) give per-pixel
class probabilities P_t as the model gives them: a softmax of the logits, or the model's own
activation (xai.modeling.ScoredModel: never a softmax over sigmoid outputs). With P̄ = mean_t P_t:

    softmax heads  predictive entropy  H = −Σ_c P̄_c log P̄_c / log C           (normalised to [0, 1])
                   mutual information  MI = H(P̄) − mean_t H(P_t), / log C       (BALD: the model's own doubt)
                   variance of the predicted class's probability  Var_t P_t,ĉ   (ĉ = argmax P̄)
                   confidence  max_c P̄_c
    sigmoid heads  per class: Bernoulli entropy of P̄_c / log 2, Var_t P_t,c; confidence P̄_ĉ

The maps of every class (what the figures, summaries and metrics take) are Var_t P_t,c (measure
"variance") or the class's entropy (measure "entropy": the Bernoulli entropy for sigmoid heads, the
predictive entropy for softmax heads); the passes run vectorised, batch_size copies per forward. The
class-agnostic maps are in extra: confidence, entropy, mutual_information (softmax), predicted_variance.
With compile the dropout masks are drawn by the compiled kernels' generator: seeded alike, but other
masks than the uncompiled passes draw.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..batching import BatchOptions, batch_size_option
from ..errors import XAIError
from ..errors import option as flag
from ..modeling import head_kind
from ..options import option
from ..runtime import seeded
from .base import Explainer, ExplainerOptions, Forward
from .registry import register

SAMPLINGS = ("dropout", "flips")
MEASURES = ("variance", "entropy")
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


@dataclass(frozen=True)
class UncertaintyOptions(BatchOptions, ExplainerOptions):
    num_mc_samples: int = option(20, "MC dropout: stochastic forward passes T", key="passes", minimum=2)
    sampling: str = option(
        "dropout",
        "what varies between passes: dropout (MC dropout) or flips (test-time augmentation)",
        choices=SAMPLINGS,
    )
    measure: str = option("variance", "each class's map: variance or entropy of its probability", choices=MEASURES)
    # the dropout masks are drawn per forward pass: another batch size draws other masks, so the size is
    # fixed by default and keyed (auto would make the maps depend on the free memory)
    batch_size: int | None = batch_size_option(32, result=True)
    seed: int = option(0, "seed of the dropout masks", minimum=0, cli=False)


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The model's dropout layers that drop something (p > 0)."""
    return [m for m in model.modules() if isinstance(m, _DROPOUT) and float(getattr(m, "p", 0.0)) > 0]


@contextlib.contextmanager
def dropout_on(layers: list[nn.Module]) -> Iterator[None]:
    """Only these layers in train mode inside the block (their flags restored after it)."""
    flags = [m.training for m in layers]
    try:
        for m in layers:
            m.train()
        yield
    finally:
        for m, flag_ in zip(layers, flags, strict=True):
            m.training = flag_


def _entropy(p: torch.Tensor, dim: int) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim)


@register("uncertainty", label="Uncertainty")
class Uncertainty(Explainer):
    """Predictive uncertainty from repeated stochastic forward passes (not an explanation of a score)."""

    family = "uncertainty"
    Options = UncertaintyOptions
    options: UncertaintyOptions
    batch_invariant = False  # the dropout masks are drawn for the whole batch of passes
    batch_unit = "copies"

    def configure(self, options: Any) -> Any:
        self.dropout = dropout_layers(self.model)
        if options.sampling == "dropout" and not self.dropout:
            raise XAIError(
                f"the model has no dropout layer, so MC dropout has nothing to sample; use {flag('sampling')} flips "
                "(test-time augmentation by flips) for an uncertainty of this model"
            )
        return options

    def attribute(self, fwd: Forward) -> torch.Tensor:
        x, o = fwd.x, self.options
        n = x.shape[0]
        total = torch.zeros(n, *fwd.output.shape[1:], device=x.device)
        squares = torch.zeros_like(total)
        pass_entropy = torch.zeros(n, *fwd.output.shape[2:], device=x.device)
        passes = len(_FLIPS) if o.sampling == "flips" else o.num_mc_samples
        sigmoid = head_kind(self.model) == "sigmoid"

        def add(P: torch.Tensor, image: torch.Tensor) -> None:
            total.index_add_(0, image, P)
            squares.index_add_(0, image, P * P)
            if not sigmoid:
                pass_entropy.index_add_(0, image, _entropy(P, 1))

        with dropout_on(self.dropout if o.sampling == "dropout" else []), seeded(o.seed, x.device):
            if o.sampling == "flips":
                for dims in _FLIPS:
                    _, P = self.scored.forward(x.flip(dims) if dims else x)
                    add((P.flip(dims) if dims else P).float(), torch.arange(n, device=x.device))
            else:
                image = torch.arange(n, device=x.device).repeat_interleave(o.num_mc_samples)

                def chunk(a: int, b: int) -> None:
                    _, P = self.scored.forward(x[image[a:b]], batched=True)
                    add(P.float(), image[a:b])

                self.batches.for_each(n * o.num_mc_samples, chunk)
        mean = total / passes
        variance = (squares / passes - mean * mean).clamp_min(0)
        fwd.extra.update(_summaries(mean, variance, pass_entropy / passes, sigmoid, fwd.classes))
        fwd.stats.update(forwards=1 + n * passes, passes=passes, sampling=o.sampling, sigmoid_head=sigmoid)
        classes = fwd.classes
        if o.measure == "variance":
            return variance[:, classes]
        if sigmoid:
            return fwd.extra["class_entropy"]
        return fwd.extra["entropy"].unsqueeze(1).expand(n, len(classes), *mean.shape[2:]).clone()


def _summaries(
    mean: torch.Tensor, variance: torch.Tensor, mean_pass_entropy: torch.Tensor, sigmoid: bool, classes: list[int]
) -> dict[str, torch.Tensor]:
    """The class-agnostic maps (N×H×W) and, for sigmoid heads, each explained class's entropy (N×C'×H×W)."""
    confidence, predicted = mean.max(1)
    out = {"confidence": confidence, "predicted_variance": variance.gather(1, predicted.unsqueeze(1)).squeeze(1)}
    if sigmoid:
        p = mean.clamp(1e-12, 1 - 1e-12)
        bernoulli = -(p * torch.log(p) + (1 - p) * torch.log(1 - p)) / math.log(2)
        out["class_entropy"] = bernoulli[:, classes]
        out["entropy"] = bernoulli.gather(1, predicted.unsqueeze(1)).squeeze(1)
    else:
        norm = math.log(mean.shape[1])
        out["entropy"] = _entropy(mean, 1) / norm
        out["mutual_information"] = (_entropy(mean, 1) - mean_pass_entropy).clamp_min(0) / norm
    return out
