"""Building the smp model a checkpoint names and loading its weights strictly, with one-line errors."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import XAIError
from ..modeling import ARCHS, build_model
from .safe_read import first_line

_SMP_ROOTS = ("encoder.", "decoder.", "segmentation_head.", "classification_head.")
# Classifier weights of an encoder's original network, which smp encoders do not use.
_DROPPABLE = ("encoder.fc.", "encoder.last_linear.", "encoder.classifier.", "encoder.head.")
# Init arguments load_model passes itself (or never: encoder_weights would download weights).
_GIVEN = frozenset({"encoder_name", "encoder_weights", "classes", "activation", "in_channels"})


def canonical_arch(name: str | None) -> str | None:
    """The smp architecture named (any case), or None."""
    return next((a for a in ARCHS if name and a.lower() == name.lower()), None)


def strip_prefixes(state: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Remove a wrapper prefix (DataParallel 'module.', torch.compile '_orig_mod.', Lightning 'model.'...).

    Rule: only when every key shares it (up to 3 levels) and what remains looks like an smp model.
    """
    keys = list(state)
    if not keys or any(k.startswith(_SMP_ROOTS) for k in keys):
        return state
    stripped = keys
    for _ in range(3):
        if len({k.split(".", 1)[0] for k in stripped}) != 1 or not all("." in k for k in stripped):
            return state
        stripped = [k.split(".", 1)[1] for k in stripped]
        if any(k.startswith(_SMP_ROOTS) for k in stripped):
            notes.append(f"stripped the key prefix '{keys[0][: len(keys[0]) - len(stripped[0])]}'")
            return dict(zip(stripped, state.values(), strict=True))
    return state


def state_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    """Output classes of an smp state_dict: the segmentation head's output channels."""
    w = state.get("segmentation_head.0.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() >= 1 else None


def init_kwargs(arch: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The file's smp init arguments that `arch` names, less those load_model passes itself.

    Encoder keyword arguments (smp's **kwargs) are not passed on: a file cannot steer timm.
    """
    import segmentation_models_pytorch as smp

    model_class = getattr(smp, arch, None) if arch in ARCHS else None
    if model_class is None:
        return {}  # build_and_load reports the unknown architecture
    params = inspect.signature(model_class).parameters
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    kwargs = {k: v for k, v in args.items() if k in named and k not in _GIVEN}
    if isinstance(args.get("in_channels"), int):
        kwargs["in_channels"] = args["in_channels"]
    return kwargs


def guess_kwargs(arch: str, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Non-default decoder settings read off the weights' shapes (FPN and Unet), for files without init arguments."""
    kw: dict[str, Any] = {}
    if arch == "FPN":
        p5 = state.get("decoder.p5.weight")
        seg = state.get("decoder.seg_blocks.0.block.0.block.0.weight")
        head = state.get("segmentation_head.0.weight")
        if p5 is not None and int(p5.shape[0]) != 256:
            kw["decoder_pyramid_channels"] = int(p5.shape[0])
        if seg is not None:
            if int(seg.shape[0]) != 128:
                kw["decoder_segmentation_channels"] = int(seg.shape[0])
            if head is not None and int(head.shape[1]) == 4 * int(seg.shape[0]):
                kw["decoder_merge_policy"] = "cat"
    elif arch == "Unet":
        chans: list[int] = []
        while f"decoder.blocks.{len(chans)}.conv1.0.weight" in state:
            chans.append(int(state[f"decoder.blocks.{len(chans)}.conv1.0.weight"].shape[0]))
        if chans and tuple(chans) != (256, 128, 64, 32, 16):
            kw["decoder_channels"] = tuple(chans)
            if len(chans) != 5:
                kw["encoder_depth"] = len(chans)
    return kw


def build_and_load(
    path: Path,
    arch: str,
    encoder: str,
    n: int,
    activation: str | None,
    state: dict[str, torch.Tensor],
    kwargs: Mapping[str, Any],
    notes: list[str],
) -> nn.Module:
    """The smp model arch/encoder with n classes and `kwargs`, its weights loaded strictly from `state`.

    Unused encoder classifier weights are dropped and missing BatchNorm num_batches_tracked counters filled; any
    other missing/unexpected key or shape mismatch is an error naming the file.
    """
    kwargs = dict(kwargs)
    in_channels = kwargs.pop("in_channels", None) or next(
        (int(v.shape[1]) for k, v in state.items() if k.startswith("encoder.") and v.dim() == 4), 3
    )
    try:
        model = build_model(arch, encoder, n, activation=activation, in_channels=in_channels, **kwargs)
    except XAIError as exc:
        raise XAIError(f"{path}: {first_line(exc)}") from None
    except Exception as exc:  # init arguments read from the file can fail anywhere in smp
        raise XAIError(f"{path}: cannot build {arch}/{encoder} with {kwargs}: {first_line(exc)}") from None
    expected = model.state_dict()
    droppable = [k for k in state if k not in expected and k.startswith(_DROPPABLE)]
    if droppable:
        state = {k: v for k, v in state.items() if k not in droppable}
        notes.append(f"dropped {len(droppable)} unused encoder classifier weights ({droppable[0].rsplit('.', 1)[0]}.*)")
    missing = [k for k in expected if k not in state]
    if missing and all(k.endswith("num_batches_tracked") for k in missing):
        state = {**state, **{k: expected[k] for k in missing}}
        notes.append(f"filled {len(missing)} BatchNorm num_batches_tracked counters the checkpoint lacks")
        missing = []
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatches (e.g. {k}: checkpoint {tuple(state[k].shape)} vs model "
                f"{tuple(expected[k].shape)})"
            )
        raise XAIError(f"{path}: the weights do not fit {arch}/{encoder} with {n} classes: {'; '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # values that do not convert (quantized, complex...)
        raise XAIError(f"{path}: the weights do not fit {arch}/{encoder}: {first_line(exc)}") from None
    return model.eval()
