"""Host synchronisations: the one way results leave the device, and a counter of every other way.

On a GPU, an operation whose result the host must see (`.item()`, `float(t)`, `if t.any():`, boolean
indexing, `nonzero`, `.cpu()`) waits until every kernel queued before it has run: the device idles
while Python prepares the next launch. Hot loops (a sweep's chunks, an evaluation's chunks, ROAD's
conjugate-gradient iterations) must not do that. The code moves its results to the host through
`to_host` only, once per sweep or metric, and does host-side arithmetic in numpy;
`SyncCounter` counts the aten operations that would synchronise on a GPU and the `to_host` calls, on
any device (also on a CPU, where nothing waits, which is how the tests pin the budget):

    with SyncCounter() as syncs:
        engine(x)
    assert syncs.total <= 4
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SYNC_OPS", "SyncCounter", "to_host"]

# aten operations whose result the host reads (data-dependent shapes, scalars, truth values)
SYNC_OPS = frozenset(
    {
        "_local_scalar_dense",  # .item(), float(t), int(t), bool(t)
        "is_nonzero",  # if t:
        "nonzero",  # boolean indexing, torch.nonzero, torch.where(cond)
        "nonzero_static",
        "nonzero_numpy",  # torch.where(cond)
        "masked_select",
        "unique",
        "_unique",
        "_unique2",
        "unique_consecutive",
        "unique_dim",
        "equal",
        "repeat_interleave",
        "histc",
        "bincount",
    }
)
_ACTIVE: list[SyncCounter] = []
_TRANSFER = [False]  # inside to_host: its own copy is counted once, as to_host


class SyncCounter(TorchDispatchMode):
    """Counts, while active, the aten operations of SYNC_OPS, copies between devices, and to_host calls:
    `counts` by name, `total` all of them."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __enter__(self) -> SyncCounter:
        _ACTIVE.append(self)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.remove(self)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = func.__name__.split(".")[0]
        if name in SYNC_OPS:
            self.counts[name] += 1
        elif name in _INDEXING and _has_boolean_index(args):  # t[mask], t[mask] = v: a nonzero inside
            self.counts["boolean_index"] += 1
        elif name in ("_to_copy", "copy_") and not _TRANSFER[0] and _crosses_devices(name, args, kwargs):
            self.counts["device_copy"] += 1
        return func(*args, **kwargs)


_INDEXING = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})


def _has_boolean_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)


def _crosses_devices(name: str, args: tuple, kwargs: dict) -> bool:
    if name == "copy_":
        dst, src = args[0], args[1]
        return isinstance(src, torch.Tensor) and src.device != dst.device
    target = kwargs.get("device")
    return target is not None and torch.device(target) != args[0].device


def to_host(t: torch.Tensor) -> np.ndarray:
    """t as a numpy array on the host: the one sanctioned device-to-host transfer (counted)."""
    for counter in _ACTIVE:
        counter.counts["to_host"] += 1
    _TRANSFER[0] = True
    try:
        return t.detach().cpu().numpy()
    finally:
        _TRANSFER[0] = False
