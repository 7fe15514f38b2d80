"""Checkpoints: the project's own format (state_dict + metadata), plain state_dicts, whole-model pickles.

Loading is safe by default (weights-only unpickling); see load_model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "seedling-xai/1"


def save_checkpoint(path: str | Path, model: nn.Module, *, arch: str, encoder: str, classes: list[str],
                    img_size: tuple[int, int], activation: str | None = None,
                    mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                    extra: dict[str, Any] | None = None) -> None:
    """Write {'format', 'state_dict', 'meta'}: loadable with torch.load(weights_only=True)."""
    from .io import atomic_path

    meta = {
        "arch": arch,
        "encoder": encoder,
        "classes": list(classes),
        "img_size": [int(v) for v in img_size],
        "activation": activation,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
    }
    if extra:
        meta.update(extra)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, tmp)
