"""Reading a pickled model tree: its tensors by module path and what it says about itself.

Works on stand-ins and real nn.Modules alike, reading only their __dict__ (never calling their methods).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .standins import StandIn

_WRAPPERS = ("DataParallel", "DistributedDataParallel")
# smp head activations by the class of Activation's inner module (or the head's last module in old smp).
_ACTIVATIONS = {
    "Identity": None,
    "Sigmoid": "sigmoid",
    "LogSoftmax": "logsoftmax",
    "Tanh": "tanh",
    "Upsample": None,
    "UpsamplingBilinear2d": None,
    "Conv2d": None,
}


def fields(obj: Any) -> dict[str, Any]:
    d = getattr(obj, "__dict__", None)
    return d if isinstance(d, dict) else {}


def class_name(obj: Any) -> str:
    return obj.global_name.rpartition(".")[2] if isinstance(obj, StandIn) else type(obj).__name__


def is_module(obj: Any) -> bool:
    """An nn.Module, or a stand-in holding one's state (_modules and _parameters)."""
    d = fields(obj)
    return isinstance(obj, nn.Module) or (
        isinstance(d.get("_modules"), Mapping) and isinstance(d.get("_parameters"), Mapping)
    )


def child(obj: Any, name: str) -> Any:
    mods = fields(obj).get("_modules")
    return mods.get(name) if isinstance(mods, Mapping) else None


def unwrap(root: Any, notes: list[str]) -> Any:
    """The model inside a pickled DataParallel/DistributedDataParallel."""
    inner = child(root, "module")
    if class_name(root) in _WRAPPERS and is_module(inner):
        notes.append(f"unwrapped the model from {class_name(root)}")
        return inner
    return root


def modules(root: Any) -> Iterator[tuple[str, Any]]:
    """(dotted path prefix, module) for root and its submodules, depth first; a module shared by two paths is listed
    under both (as state_dict names its tensors), a cycle is cut."""
    stack: list[tuple[str, Any, frozenset[int]]] = [("", root, frozenset())]
    while stack:
        path, obj, ancestors = stack.pop()
        if id(obj) in ancestors:
            continue
        yield path, obj
        mods = fields(obj).get("_modules")
        if isinstance(mods, Mapping):
            inner = ancestors | {id(obj)}
            stack.extend((f"{path}{k}.", m, inner) for k, m in reversed(list(mods.items())) if m is not None)


def all_real(root: nn.Module) -> bool:
    """Every module of the tree is a real nn.Module (no stand-in for a missing class)."""
    return all(isinstance(m, nn.Module) for _, m in modules(root))


def collect_state(root: Any) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers by dotted module path, as module.state_dict() names them."""
    out: dict[str, torch.Tensor] = {}
    for path, m in modules(root):
        d = fields(m)
        skip = d.get("_non_persistent_buffers_set")
        skip = skip if isinstance(skip, (set, frozenset)) else set()
        for group in (d.get("_parameters"), d.get("_buffers")):
            for k, v in group.items() if isinstance(group, Mapping) else ():
                if isinstance(v, torch.Tensor) and k not in skip:
                    out[f"{path}{k}"] = v.detach()
    return out


@dataclass
class Description:
    """What a pickled smp model says about itself."""

    arch: str | None  # its class name (FPN, Unet...)
    encoder: str | None  # smp names models '<arch>-<encoder>'
    activation_found: bool
    activation: str | None  # smp's name for the head activation
    init_args: dict[str, Any] | None  # smp >= 0.4's _hub_mixin_config: the model's init arguments


def describe(root: Any) -> Description:
    d = fields(root)
    name = d.get("name")
    config = d.get("_hub_mixin_config")
    init_args = dict(config) if isinstance(config, Mapping) and plain(config) else None
    encoder = init_args.get("encoder_name") if init_args else None
    if not isinstance(encoder, str):
        encoder = name.split("-", 1)[1] if isinstance(name, str) and "-" in name else None
    found, activation = head_activation(root)
    return Description(class_name(root), encoder, found, activation, init_args)


def head_activation(root: Any) -> tuple[bool, str | None]:
    """(found, smp activation name) of an smp head: segmentation_head[-1], or its inner .activation module."""
    mods = fields(child(root, "segmentation_head")).get("_modules")
    if not isinstance(mods, Mapping) or not mods:
        return False, None
    last = list(mods.values())[-1]
    inner = child(last, "activation") if class_name(last) == "Activation" else last
    cname = class_name(inner) if inner is not None else ""
    if cname in _ACTIVATIONS:
        return True, _ACTIVATIONS[cname]
    if cname in ("Softmax", "ArgMax"):
        return True, cname.lower() + ("2d" if fields(inner).get("dim") == 1 else "")
    return False, None


def plain(value: Any, depth: int = 0) -> bool:
    """JSON-like data only (what smp's init arguments are): str, numbers, None, lists/tuples/str-keyed dicts."""
    if depth > 4:
        return False
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(plain(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and plain(v, depth + 1) for k, v in value.items())
    return False
