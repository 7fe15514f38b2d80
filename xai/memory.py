"""How many images fit: the memory a batched forward pass takes, and the device's free memory.

`fitting_batch(forward, device)` picks an automatic batch size (`batch_size=None`, `--batch_size auto`):

    peak(b)    = the memory forward(b) allocates at its peak, measured at b = 1 and b = 2
    per_image  = peak(2) − peak(1)               (what one more image costs)
    fixed      = peak(1) − per_image             (what any batch costs: workspaces, shared inputs)
    batch      = the largest power of two b ≤ cap with fixed + b · per_image ≤ fraction · free

On CUDA the peak is the caching allocator's own statistic (`torch.cuda.max_memory_allocated`, cuDNN's
workspaces included) and free memory is the driver's free memory plus the allocator's cached free
blocks; elsewhere the peak is the bytes of the tensor storages alive at once during the forward
(counted by a dispatch mode, `LiveBytes`) and free memory is the system's available memory, within the
process's cgroup limit. The measurement is an estimate: the batches still halve on out-of-memory
(xai.batching).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["AUTO_CAP", "LiveBytes", "fitting_batch", "free_bytes", "peak_bytes"]

# the largest automatic batch, and the share of the free memory it may take: a GPU wants batches of
# hundreds of images; a CPU is busy from a few dozen on (bench/bench_scorecam.py) and shares its memory
# with the figure workers and the rest of the machine
AUTO_CAP = {"cuda": 1024, "cpu": 32}
AUTO_FRACTION = {"cuda": 0.5, "cpu": 0.25}


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the tensor storages that operators create inside the block: `live` now and
    `peak` at most (storages alive before the block do not count). Views and in-place results share
    their input's storage and add nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._alive: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._count(t.untyped_storage())
        return out

    def _count(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        if key in self._alive:
            return
        size = storage.nbytes()
        self._alive.add(key)
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._freed, key, size)

    def _freed(self, key: int, size: int) -> None:
        if key in self._alive:
            self._alive.discard(key)
            self.live -= size


def peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    """The bytes run() allocates at its peak beyond what was allocated before it (see the module)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    with LiveBytes() as counter:
        run()
    return counter.peak


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """What the process's cgroup (v2) still lets it allocate, or None without a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def free_bytes(device: torch.device) -> int | None:
    """Memory the device can still give: CUDA's free memory plus the caching allocator's free cached
    blocks; on the CPU the available system memory within the cgroup limit. None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, cached))
    if device.type != "cpu":
        return None
    known = [b for b in (_meminfo_available(), _cgroup_headroom()) if b is not None]
    return min(known) if known else None


def fitting_batch(
    forward: Callable[[int], object],
    device: torch.device | str,
    cap: int | None = None,
    fraction: float | None = None,
    free: int | None = None,
) -> int:
    """The largest power of two b ≤ cap whose measured memory fits `fraction` of the free memory (see
    the module); forward(b) runs the batched pass on b images, with the random generators' states
    restored after it. cap and fraction default to the device type's (AUTO_CAP, AUTO_FRACTION); free to
    `free_bytes(device)` (the cap when unknown)."""
    device = torch.device(device)
    kind = "cuda" if device.type == "cuda" else "cpu"
    cap = AUTO_CAP[kind] if cap is None else int(cap)
    fraction = AUTO_FRACTION[kind] if fraction is None else float(fraction)
    # the measuring passes draw nothing from the generators a method seeded (dropout masks, noise)
    on_gpu = kind == "cuda" and torch.cuda.is_available()
    gpus = [device.index if device.index is not None else torch.cuda.current_device()] if on_gpu else []
    with torch.random.fork_rng(devices=gpus):
        one = peak_bytes(lambda: forward(1), device)
        two = peak_bytes(lambda: forward(2), device)
    per_image = max(two - one, 1)
    fixed = max(one - per_image, 0)
    free = free_bytes(device) if free is None else free
    if free is None:
        return cap
    fits = (fraction * free - fixed) / per_image
    if fits < 2:
        return 1
    return int(min(cap, 2 ** math.floor(math.log2(fits))))
