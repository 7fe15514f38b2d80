"""Precision policy: fp32 is IEEE fp32 everywhere; tf32 lets cuBLAS and cuDNN use TensorFloat-32 for
the masked forwards; bf16/fp16 run them under autocast.

NVIDIA GPUs from Ampere on may run fp32 matmuls and convolutions in TF32 (10-bit mantissa), and
cuDNN's convolutions do by default: "fp32" would then not be fp32. `float32_math(tf32)` sets both
cuBLAS's and cuDNN's fp32 precision for a block and restores them after; a run holds IEEE fp32 around
everything it computes (xai.pipeline.runner) and a method's tf32 only around its masked forwards.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .errors import XAIError

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # the x86 flags of native bf16 matrix work, as Linux lists them


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (the `flags` lines of /proc/cpuinfo, or of the text
    given); empty where they cannot be read (another system). torch 2.14 has no bf16 probe of its own:
    torch._C._cpu holds only _get_cpu_capability and _init_amx."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return frozenset()
    return frozenset(
        flag
        for line in cpuinfo.splitlines()
        if line.split(":")[0].strip() == "flags"
        for flag in line.split(":", 1)[1].split()
    )


def cpu_bf16(cpuinfo: str | None = None) -> tuple[bool, str]:
    """(whether the CPU runs bf16 matrix work natively: AMX-BF16 or AVX512-BF16, why) from its flags."""
    flags = cpu_flags(cpuinfo)
    found = [f for f in BF16_FLAGS if f in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}: bf16 is native"
    if not flags:
        return False, "the CPU's flags cannot be read here (no /proc/cpuinfo): fp32"
    return False, f"the CPU has neither {' nor '.join(BF16_FLAGS)} (torch's kernels: {cpu_capability()}): fp32"


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels use (AVX2, AVX512, ...)."""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 (cpu_bf16): the CPUs on which bf16 matrix work beats fp32."""
    return cpu_bf16()[0]


def device_runs_tf32(device: torch.device) -> bool:
    """Whether TF32 exists on the device: CUDA with compute capability 8.0 (Ampere) or newer."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA devices with native bf16 and on CPUs with AVX512-BF16/AMX, else fp32;
    tf32 -> fp32 where the device has no TF32 (what runs is what the manifest records)."""
    if precision not in PRECISIONS:
        raise XAIError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision == "tf32":
        return "tf32" if device_runs_tf32(device) else "fp32"
    if precision != "auto":
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


def precision_choice(precision: str, device: torch.device) -> dict[str, str]:
    """What a precision option asked for, what runs (resolve_precision) and why, for the manifest and the
    report: {"asked", "ran", "why"}."""
    ran = resolve_precision(precision, device)
    if precision == "tf32":
        why = "the GPU runs TF32" if ran == "tf32" else "the device has no TF32: fp32"
    elif precision != "auto":
        why = "as asked"
    elif device.type == "cuda":
        why = "the CUDA device runs bf16 natively" if ran == "bf16" else "the CUDA device has no native bf16: fp32"
    elif device.type == "cpu":
        why = cpu_bf16()[1]
    else:
        why = f"no native bf16 known on {device.type}: fp32"
    return {"asked": precision, "ran": ran, "why": why}


_NEW_API = hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cuda.matmul, "fp32_precision")
_backends: Any = torch.backends  # the fp32_precision settings (torch ≥ 2.9) are not in its type stubs


def float32_settings() -> dict[str, str]:
    """The fp32 precision cuBLAS matmuls and cuDNN convolutions are set to: "ieee" or "tf32" each."""
    if _NEW_API:
        matmul = _backends.cuda.matmul.fp32_precision
        if matmul == "none":  # follows the global setting, whose default is the legacy IEEE matmul
            matmul = "tf32" if _backends.fp32_precision == "tf32" else "ieee"
        conv = _backends.cudnn.conv.fp32_precision
        if conv == "none":
            conv = "tf32" if _backends.fp32_precision == "tf32" else "ieee"
        return {"matmul": matmul, "conv": conv}
    return {
        "matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee",
        "conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee",
    }


@contextlib.contextmanager
def float32_math(tf32: bool) -> Iterator[None]:
    """fp32 matmuls and convolutions in TF32 (tf32) or IEEE fp32 inside the block; restored after."""
    mode = "tf32" if tf32 else "ieee"
    if _NEW_API:
        saved = (_backends.cuda.matmul.fp32_precision, _backends.cudnn.conv.fp32_precision)
        _backends.cuda.matmul.fp32_precision = mode
        _backends.cudnn.conv.fp32_precision = mode
        try:
            yield
        finally:
            _backends.cuda.matmul.fp32_precision, _backends.cudnn.conv.fp32_precision = saved
        return
    legacy = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = legacy


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The compute context of a resolved precision: IEEE fp32 (fp32), TF32 (tf32), or autocast to
    bf16/fp16 with IEEE fp32 for what autocast keeps in fp32."""
    if precision in ("fp32", "tf32"):
        return float32_math(precision == "tf32")
    stack = contextlib.ExitStack()
    stack.enter_context(float32_math(False))
    stack.enter_context(torch.autocast(device_type=device.type, dtype=_DTYPES[precision]))
    return stack


def numerics(
    device: torch.device, precisions: dict[str, str], evaluation: dict[str, str] | None = None
) -> dict[str, object]:
    """What ran, for the manifest: each method's masked-forward precision, the evaluation's forwards
    (precision_choice of --eval_precision, when the run evaluates), and that everything else ran in IEEE
    fp32 (TF32 off), or that the device has no TF32 at all."""
    described: dict[str, object] = {
        "device_has_tf32": device_runs_tf32(device),
        "everything_else": "IEEE fp32 (TF32 off for cuBLAS and cuDNN)" if device.type == "cuda" else "fp32",
        "masked_forwards": dict(precisions),
    }
    if evaluation is not None:
        described["evaluation_forwards"] = dict(evaluation)
    if device.type == "cpu":
        described["cpu_bf16"] = cpu_bf16()[1]  # why precision auto chose what it chose
    return described


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
