"""Batches that halve on out-of-memory: the one mechanism every sweep of forward passes uses.

A run keeps one `Batches` per engine (and one for the evaluation): once a chunk of b images did not
fit, later chunks hold b // 2 for the rest of the run, down to 1; the first halving is said once on
the log. Every form of running out of memory counts: torch.OutOfMemoryError (CUDA's caching
allocator), MemoryError (the CPU), and the RuntimeErrors that cuDNN, cuBLAS and the CUDA runtime raise
when an allocation inside them fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .errors import OutOfMemory, first_line

__all__ = ["Batches", "is_out_of_memory"]

log = logging.getLogger(__name__)
_OOM_TEXTS = (
    "out of memory",  # "CUDA error: out of memory", "CUDA out of memory"
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "cudaErrorMemoryAllocation",
    "HIP out of memory",
)


def release_cached_memory(device: torch.device | str) -> None:
    """Give the CUDA caching allocator's free blocks back before a retry with less (nothing elsewhere)."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether exc says that memory ran out (any of the forms above)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in _OOM_TEXTS)


class Batches:
    """for_each(count, fn): fn(a, b) over [0, count) in chunks of `size`, halving on out-of-memory.

    fn must not change anything before its forward pass can fail (build inputs, run, then store), so
    that a chunk is simply run again at half its size."""

    def __init__(self, size: int, where: str, unit: str = "images", device: torch.device | str = "cpu"):
        self.size = int(size)
        self.where, self.unit, self.device = where, unit, torch.device(device)
        self.halved = False

    def for_each(self, count: int, fn: Callable[[int, int], None]) -> None:
        a = 0
        while a < count:
            b = min(count, a + self.size)
            try:
                fn(a, b)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self.halve(b - a, exc)
                continue
            a = b

    def halve(self, failed: int, exc: BaseException) -> None:
        """After `failed` images did not fit: half as many from now on (OutOfMemory at 1)."""
        if failed <= 1:
            raise OutOfMemory(self.where, 1, str(self.device), first_line(exc, 120)) from None
        release_cached_memory(self.device)
        self.size = failed // 2
        if not self.halved:
            log.warning(
                "%s: out of memory at %d %s per forward pass; continuing with %d, halved again if needed "
                "(a smaller batch size avoids the retries)",
                self.where,
                failed,
                self.unit,
                self.size,
            )
            self.halved = True
