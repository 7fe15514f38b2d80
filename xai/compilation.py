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
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["compiled", "cudnn_benchmark"]

_COMPILED: weakref.WeakKeyDictionary[nn.Module, Callable[..., Any]] = weakref.WeakKeyDictionary()


def compiled(model: nn.Module) -> Callable[..., Any]:
    """torch.compile(model), once per model (the compiled module shares the model's parameters)."""
    if model not in _COMPILED:
        _COMPILED[model] = torch.compile(model)
    return _COMPILED[model]


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
