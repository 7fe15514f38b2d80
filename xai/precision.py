"""Precision policy: fp32 is exact; bf16/fp16 run the masked forwards under autocast."""
from __future__ import annotations

import contextlib

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


def wants_channels_last(precision: str, device: torch.device) -> bool:
    """channels_last pays off for reduced-precision convolutions on CUDA (tensor cores) and oneDNN."""
    return device.type == "cuda" or precision != "fp32"
