"""Precision policy: fp32 is exact; bf16/fp16 run the masked forwards under autocast."""

from __future__ import annotations

import contextlib
import time
import weakref

import torch

from .errors import XAIError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPUs on which bf16 matrix work beats fp32."""
    cpu = getattr(torch._C, "_cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:
            pass
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA devices with native bf16 and on CPUs with AVX512-BF16/AMX, else fp32."""
    if precision not in PRECISIONS:
        raise XAIError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu" and not cpu_has_fast_bf16():
            return precision  # allowed, but slow on this CPU
        return precision
    if device.type == "cuda":
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch without the argument
            native = torch.cuda.is_bf16_supported()
        return "bf16" if native else "fp32"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


_LAYOUTS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, bool]] = weakref.WeakKeyDictionary()


def prefers_channels_last(model: torch.nn.Module, example: torch.Tensor, precision: str, rounds: int = 2) -> bool:
    """Whether the model's forward runs faster in channels_last than in the default (contiguous) layout,
    for inputs like `example` (up to 4 of them are timed) at `precision`.

    Measured once per model, device, precision and input size and cached for the process (the answer
    depends on the CPU's or GPU's kernels: on an AVX2 EPYC, se_resnext50 FPN fp32 ran 1.9x faster in
    channels_last; other CPUs differ). The model's parameters are left in the layout they had.
    """
    key = (str(example.device), precision, tuple(example.shape[1:]))
    cache = _LAYOUTS.setdefault(model, {})
    if key in cache:
        return cache[key]
    sample = example[: min(4, example.shape[0])]
    params = [p for p in model.parameters() if p.dim() == 4]
    was_channels_last = [p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in params]
    best: dict[bool, float] = {}
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # never update batch-norm statistics while timing
    try:
        for _ in range(rounds):
            for channels_last in (False, True):
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                with torch.inference_mode(False):
                    model.to(memory_format=fmt)
                with torch.inference_mode(), autocast(precision, example.device):
                    inp = sample.contiguous(memory_format=fmt)
                    _sync(example.device)
                    t0 = time.perf_counter()
                    model(inp)
                    _sync(example.device)
                    spent = time.perf_counter() - t0
                best[channels_last] = min(best.get(channels_last, spent), spent)
    finally:
        for m, training in modes:
            m.training = training
        with torch.inference_mode(False):
            model.to(memory_format=torch.contiguous_format)
            for p, cl in zip(params, was_channels_last, strict=True):
                if cl:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
    cache[key] = best[True] < best[False]
    return cache[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
