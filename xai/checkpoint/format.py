"""The project's own checkpoint format: a safetensors file whose header carries the model's description.

The header's metadata is {"format": FORMAT, "meta": JSON}; meta holds arch, encoder, classes, img_size, activation,
mean, std, model_kwargs (smp's init arguments, so loading never guesses decoder settings) and any extra entries.
A safetensors file holds only tensors, so the toolkit's own files can never carry code.
LEGACY_FORMAT files ({"format", "state_dict", "meta"} written with torch.save) still load.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import XAIError
from .safe_read import corrupt
from .tree import plain

FORMAT = "seedling-xai/2"
LEGACY_FORMAT = "seedling-xai/1"


@dataclass
class ProjectMeta:
    arch: str
    encoder: str
    classes: list[str]
    img_size: list[int] | None
    activation: str | None
    mean: list[float] | None
    std: list[float] | None
    model_kwargs: dict[str, Any] | None
    preprocessing: dict[str, Any] | None = None  # xai.data.Preprocessing the model was trained with


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    encoder: str,
    classes: list[str],
    img_size: tuple[int, int],
    activation: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the project's format atomically: the weights as safetensors, their description in its header.

    model_kwargs: smp's init arguments; default: the model's own record of them (smp's _hub_mixin_config).
    encoder_weights is never stored (loading builds the model without downloads).
    """
    from safetensors.torch import save_file

    from ..io import atomic_path

    if model_kwargs is None:
        model_kwargs = getattr(model, "_hub_mixin_config", None)
    meta = {
        **(extra or {}),
        "arch": arch,
        "encoder": encoder,
        "classes": list(classes),
        "img_size": [int(v) for v in img_size],
        "activation": activation,
        "mean": [float(v) for v in mean] if mean is not None else None,
        "std": [float(v) for v in std] if std is not None else None,
        "model_kwargs": (
            {k: v for k, v in model_kwargs.items() if k != "encoder_weights"} if model_kwargs is not None else None
        ),
    }
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise XAIError(f"{path}: cannot store the checkpoint's description as JSON: {exc}") from None
    # Separate contiguous copies: safetensors refuses tensors that share memory.
    state = {
        k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "meta": text})


def is_safetensors(path: Path) -> bool:
    """By content: an 8-byte little-endian header length, then a JSON header that fits in the file."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n <= path.stat().st_size - 8


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], ProjectMeta | None]:
    """(tensors on cpu, the project's description, or None for a plain safetensors state_dict)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a Mapping
    except Exception as exc:  # safetensors raises its own kinds on damaged files
        raise corrupt(path, exc) from None
    fmt = header.get("format", "")
    if not fmt.startswith("seedling-xai/"):  # other writers put their own format there ("pt")
        return tensors, None
    _check_version(path, fmt, FORMAT)
    try:
        meta = json.loads(header.get("meta", ""))
    except ValueError:
        raise XAIError(f"{path}: damaged {FORMAT} checkpoint (its description is not JSON)") from None
    return tensors, parse_meta(path, meta)


def read_legacy(path: Path, obj: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], ProjectMeta]:
    """(state_dict, description) of a {"format": LEGACY_FORMAT, "state_dict", "meta"} pickle."""
    _check_version(path, str(obj["format"]), LEGACY_FORMAT)
    state = obj.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XAIError(f"{path}: damaged {LEGACY_FORMAT} checkpoint (no state_dict)")
    return dict(state), parse_meta(path, obj.get("meta"))


def _check_version(path: Path, found: str, expected: str) -> None:
    if found != expected:
        raise XAIError(
            f"{path}: checkpoint format {found} is not supported here (expected {expected}); "
            "it was written by a different version of this tool"
        )


def parse_meta(path: Path, meta: Any) -> ProjectMeta:
    """The description, checked: arch, encoder and classes are required, every entry must have its type."""
    meta = meta if isinstance(meta, Mapping) else {}
    arch, encoder, classes = meta.get("arch"), meta.get("encoder"), meta.get("classes")
    activation, kwargs = meta.get("activation"), meta.get("model_kwargs")
    img_size, mean, std = (meta.get(k) for k in ("img_size", "mean", "std"))
    ok = (
        isinstance(arch, str)
        and isinstance(encoder, str)
        and isinstance(classes, list)
        and all(isinstance(c, str) for c in classes)
        and (activation is None or isinstance(activation, str))
        and (kwargs is None or (isinstance(kwargs, Mapping) and plain(kwargs)))
        and all(
            v is None or (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v))
            for v in (img_size, mean, std)
        )
    )
    if not ok:
        raise XAIError(
            f"{path}: damaged project checkpoint (its description lacks arch, encoder or classes, or has "
            "entries of the wrong type)"
        )
    pre = meta.get("preprocessing")
    pre = dict(pre) if isinstance(pre, Mapping) and plain(pre) else None
    return ProjectMeta(
        arch, encoder, list(classes), img_size, activation, mean, std, dict(kwargs) if kwargs is not None else None, pre
    )
