"""How the batched forward passes run fast: torch.compile and cuDNN's algorithm search, both opt-in.

`compiled(model)` is the model under torch.compile, built once per model and shared by every engine
and the evaluation of a run (so a run compiles each input shape once, not once per method). It is
used only for the batched forwards without hooks or gradients (Score-CAM's masked images, occlusion,
RISE, the MC-dropout passes, the evaluation's perturbed images): the first batch of each input shape
pays the compilation, and a second batch size (a sweep's last, smaller chunk) recompiles once with a
dynamic batch dimension. `cudnn_benchmark(on)` lets cuDNN time its convolution algorithms for each
new shape and keep the fastest (a sweep's chunks share their shape); both leave the maps equal to
float32 rounding (other kernels, other summation orders).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["compiled", "cudnn_benchmark"]

_ATTRIBUTE = "_xai_compiled"


def compiled(model: nn.Module) -> Callable[..., Any]:
    """torch.compile(model), once per model (the compiled module shares the model's parameters). It is
    kept in the model's own __dict__ (not as a submodule: no state_dict entry), so it goes with the model."""
    found = model.__dict__.get(_ATTRIBUTE)
    if found is None:
        found = torch.compile(model)
        object.__setattr__(model, _ATTRIBUTE, found)
    return found


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    """torch.backends.cudnn.benchmark on inside the block when `on` (restored after it); else untouched."""
    if not on:
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved
