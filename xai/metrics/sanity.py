"""Sanity check by cascading model randomisation (Adebayo et al., NeurIPS 2018).

On a deep copy of the model (never the caller's), re-initialise from the top: the segmentation head,
then also the decoder, then also the encoder's stages, deepest first (its children that hold
parameters; the leaf modules before the first composite stage, e.g. conv1 and bn1 of a ResNet, form
one step "encoder.stem"). Without smp's head/decoder/encoder, the model's own children that hold
parameters, last first. Each step is cumulative and re-initialises its new modules with their own
reset_parameters() (reset_running_stats() for normalisation layers) after seeding with seed + k
(k = 1, 2, …: the step's place in the cascade) inside torch.random.fork_rng(): reproducible on one
device, and the global RNG is left as it was. Parameters of modules without reset_parameters() stay.

After each step the same method with the same options explains x on the randomised copy, with the
region fixed to the original model's prediction (region="gt", gt = that prediction), and

    ρ_c = Spearman rank correlation (average ranks for ties) of the randomised and the original map
          of class c over the photograph's pixels V          (NaN when either map is constant on V)

A method that depends on the weights falls towards ρ = 0; the step "none" (no randomisation, only
asked for explicitly) gives ρ = 1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..batching import BatchOptions
from ..errors import XAIError
from ..layers import model_device
from ..methods.base import Explainer

__all__ = ["cascading_randomisation", "randomisation_steps", "randomised_copies", "same_engine", "spearman"]

IDENTITY = "none"


def same_engine(engine: Explainer, model: nn.Module, **overrides: Any) -> Explainer:
    """The same method with the same options (then `overrides`) on another model (or the same one), with
    the automatic batch sizes the engine measured (a copy of a model has its memory). A copy of the model
    is not compiled: a compilation per randomised copy would cost far more than it saves."""
    if model is not engine.model and isinstance(engine.options, BatchOptions):
        overrides = {"compile": False, **overrides}
    new = type(engine)(model, engine.options.replace(**overrides))
    if getattr(engine, "batch_unit", None) is not None and new.batch_unit is not None:
        new.batches.fitted.update(engine.batches.fitted)
    return new


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def randomisation_steps(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The cascade, top first: [(step name, names of the modules it newly re-initialises)]."""
    children = dict(model.named_children())
    if not all(k in children for k in ("encoder", "decoder", "segmentation_head")):
        return [(n, [n]) for n, m in reversed(list(children.items())) if _has_parameters(m)]
    steps = [("segmentation_head", ["segmentation_head"]), ("decoder", ["decoder"])]
    stem: list[str] = []
    stages: list[tuple[str, list[str]]] = []
    for name, child in children["encoder"].named_children():
        if not _has_parameters(child):
            continue
        if not stages and not any(True for _ in child.children()):
            stem.append(f"encoder.{name}")
        else:
            stages.append((f"encoder.{name}", [f"encoder.{name}"]))
    return steps + stages[::-1] + ([("encoder.stem", stem)] if stem else [])


def _reinitialise(modules: Sequence[nn.Module], seed: int, device: torch.device) -> None:
    """reset_parameters() / reset_running_stats() of every submodule, seeded, the global RNG restored."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        for module in modules:
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._NormBase):
                    m.reset_running_stats()
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """1-based ranks of v's values; tied values share the mean of their ranks."""
    _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the average ranks of a and b (flattened); NaN if either is constant."""
    ra, rb = _average_ranks(a.flatten().double().cpu()), _average_ranks(b.flatten().double().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum()) / denom if denom > 0 else math.nan


def randomised_copies(model: nn.Module, seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Yields ("none", a deep copy of model), then (step, the same copy re-initialised up to and
    including that step) for each step of randomisation_steps(model), top first."""
    copied = copy.deepcopy(model)
    modules = dict(copied.named_modules())
    device = model_device(copied)
    yield IDENTITY, copied
    for k, (name, new) in enumerate(randomisation_steps(copied), start=1):
        _reinitialise([modules[n] for n in new], seed + k, device)
        yield name, copied


def cascading_randomisation(
    engine: Explainer,
    x: torch.Tensor,
    classes: Sequence[int],
    valid: torch.Tensor,
    region_pred: torch.Tensor,
    seed: int = 0,
    steps: Sequence[str] | None = None,
) -> list[tuple[str, torch.Tensor]]:
    """[(step name, C' tensor of ρ per class, NaN where undefined)] for the cascade of
    randomisation_steps(engine.model), or for the named steps (in cascade order; "none": no
    randomisation). x: 1×3×H×W; valid: H×W bool; region_pred: the original prediction (H×W ids)."""
    x = x.unsqueeze(0) if x.dim() == 3 else x
    valid = torch.as_tensor(valid).bool().reshape(x.shape[-2:]).cpu()
    gt = torch.as_tensor(region_pred).reshape(1, *x.shape[-2:])
    names = [IDENTITY] + [name for name, _ in randomisation_steps(engine.model)]
    wanted = set(names[1:] if steps is None else steps)
    unknown = wanted - set(names)
    if unknown:
        raise XAIError(f"unknown randomisation step(s) {sorted(unknown)}: choose from {', '.join(names)}")

    def maps(model: nn.Module) -> torch.Tensor:
        result = same_engine(engine, model, region="gt").explain(x, classes=classes, gt=gt, valid=valid[None])
        return result.maps[0].detach().cpu()

    original = maps(engine.model)
    out: list[tuple[str, torch.Tensor]] = []
    for name, model in randomised_copies(engine.model, seed):
        if name in wanted:
            randomised = maps(model)
            rho = [spearman(randomised[j][valid], original[j][valid]) for j in range(original.shape[0])]
            out.append((name, torch.tensor(rho, dtype=torch.float64)))
        if len(out) == len(wanted):
            break
    return out
