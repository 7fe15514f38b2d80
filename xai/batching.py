"""Batches that halve on out-of-memory: the one mechanism every sweep of forward passes uses.

A run keeps one `Batches` per engine (and one for the evaluation): once a chunk of b images did not
fit, later chunks hold b // 2 for the rest of the run, down to 1; the first halving is said once on
the log. A size of None is automatic: `fit` measures it once per kind of input (xai.memory: the
largest power of two whose measured memory fits the device's free memory), and it halves the same
way. Every form of running out of memory counts: torch.OutOfMemoryError (CUDA's caching allocator),
MemoryError (the CPU), and the RuntimeErrors that cuDNN, cuBLAS and the CUDA runtime raise when an
allocation inside them fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from .errors import OutOfMemory, first_line
from .memory import fitting_batch
from .options import Options, option

__all__ = ["BatchOptions", "Batches", "batch_size_option", "is_out_of_memory", "progress_bar"]
T = TypeVar("T")

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


def progress_bar(enabled: bool, total: int, desc: str, unit: str = "image") -> Any:
    """A tqdm bar over a long sweep of `total` units (for Batches.for_each, which advances and closes it),
    or None when not asked for."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)


def batch_size_option(default: int | None = None, result: bool = False) -> Any:
    """The batch_size option of every method that runs batched forward passes: automatic (None) by
    default; result=True for a method whose maps depend on how its passes are batched (its random draws)."""
    return option(
        default,
        "images per forward pass; auto: the largest power of two whose measured memory fits the device's free "
        "memory (at most 1024 on GPUs, 32 on CPUs); halved automatically on out-of-memory",
        key="batch",
        minimum=1,
        result=result,
        null_words=("auto",),
    )


@dataclass(frozen=True)
class BatchOptions(Options):
    """How a method's batched forward passes run (mixed into the options of every method that has them)."""

    batch_size: int | None = batch_size_option()
    compile: bool = option(
        False,
        "torch.compile the batched forward passes without gradients (the first batch of each input shape "
        "compiles: seconds to minutes, by model and machine; then faster: docs/benchmarks.md)",
        result=False,
    )
    cudnn_benchmark: bool = option(
        False, "let cuDNN time its convolution algorithms per input shape and keep the fastest (GPUs)", result=False
    )


class Batches:
    """for_each(count, fn, bar): fn(a, b) over [0, count) in chunks of `size`, halving on out-of-memory (a
    progress bar advanced chunk by chunk, closed at the end);
    run(fn): fn(size), retried at half the size on out-of-memory (a library that batches by itself).

    fn must not change anything before its forward pass can fail (build inputs, run, then store), so
    that a chunk is simply run again at half its size. size None: automatic (call `fit` first)."""

    def __init__(self, size: int | None, where: str, unit: str = "images", device: torch.device | str = "cpu"):
        self.requested = None if size is None else int(size)
        self.size = self.requested or 0
        self.where, self.unit, self.device = where, unit, torch.device(device)
        self.halved = False
        self.fitted: dict[Hashable, int] = {}  # automatic sizes by kind of input (halvings included)
        self._kind: Hashable = None
        self._forward: Callable[[int], object] | None = None

    @property
    def automatic(self) -> bool:
        return self.requested is None

    def fit(self, kind: Hashable, forward: Callable[[int], object]) -> None:
        """With an automatic size: the coming chunks are inputs of this kind (a shape, a layout), whose
        size is measured with forward(b), which runs the batched pass on b images, once per kind and
        only when a chunk needs it (xai.memory.fitting_batch)."""
        if self.requested is None:
            self._kind, self._forward = kind, forward
            self.size = self.fitted.get(kind, 0)

    def run(self, fn: Callable[[int], T]) -> T:
        """fn(size), retried with half the size on out-of-memory (OutOfMemory at 1)."""
        while True:
            size = self._checked_size()
            try:
                return fn(size)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self.halve(size, exc)

    def _checked_size(self) -> int:
        if self.size < 1:
            if self._forward is None:
                raise RuntimeError(f"{self.where}: an automatic batch size needs Batches.fit before the first chunk")
            try:
                size = fitting_batch(self._forward, self.device)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_cached_memory(self.device)
                size = 1  # two images did not fit: one at a time (OutOfMemory if not even that)
            self.size = self.fitted[self._kind] = size
            log.debug("%s: automatic batch size %d %s", self.where, self.size, self.unit)
        return self.size

    def for_each(self, count: int, fn: Callable[[int, int], None], bar: Any = None) -> None:
        """fn(a, b) over [0, count) in chunks of `size`, halving on out-of-memory. bar (a `progress_bar`,
        or None): advanced by b − a after each chunk that ran, and closed when the sweep ends, whether it
        finished or failed."""
        try:
            a = 0
            while a < count:
                b = min(count, a + self._checked_size())
                try:
                    fn(a, b)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    self.halve(b - a, exc)
                    continue
                if bar is not None:
                    bar.update(b - a)
                a = b
        finally:
            if bar is not None:
                bar.close()

    def halve(self, failed: int, exc: BaseException) -> None:
        """After `failed` images did not fit: half as many from now on (OutOfMemory at 1)."""
        if failed <= 1:
            raise OutOfMemory(self.where, 1, str(self.device), first_line(exc, 120)) from None
        release_cached_memory(self.device)
        self.size = failed // 2
        if self.automatic:
            self.fitted[self._kind] = self.size
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
