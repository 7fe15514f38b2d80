"""load_model: any checkpoint kind users have, read safely, as an smp model in eval mode."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import torch
from torch import nn

from ..errors import XAIError
from . import tree
from .build import build_and_load, canonical_arch, guess_kwargs, init_kwargs, state_classes, strip_prefixes
from .format import FORMAT, ProjectMeta, is_safetensors, read_legacy, read_safetensors
from .safe_read import read_pickle

KINDS = ("project", "state_dict", "whole_model", "trusted_pickle")
_WRAPPED_STATE_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network",
    "model_state",
    "weights",
    "params",
    "ema_state_dict",
    "model_ema",
)


@dataclass
class LoadedModel:
    model: nn.Module
    kind: str
    arch: str | None
    encoder: str | None
    classes: list[str] | None
    num_classes: int
    img_size: tuple[int, ...] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    outputs_probabilities: bool
    sha256: str
    notes: list[str] = field(default_factory=list)
    activation: str | None = None
    model_kwargs: dict[str, Any] | None = None  # the smp init arguments the model was built with (besides the above)
    preprocessing: dict[str, Any] | None = None  # the preprocessing it was trained with (project checkpoints)


@dataclass
class _Request:
    path: Path
    arch: str | None
    encoder: str | None
    classes: list[str] | None
    activation: str | None
    sha256: str
    notes: list[str] = field(default_factory=list)


def load_model(
    path: str | Path,
    *,
    arch: str | None = None,
    encoder: str | None = None,
    classes: Iterable[str] | None = None,
    activation: str | None = None,
    trust_checkpoint: bool = False,
    map_location: Any = "cpu",
) -> LoadedModel:
    """Load a segmentation model from any checkpoint kind (see the package docstring); in eval mode.

    arch/encoder/classes/activation are the config/flag values, used where the file does not say (plain state_dicts,
    pickles of old smp versions); `classes` also checks the file's class count. The model ends on map_location's
    device when that names one (str or torch.device), else on the cpu.
    """
    path = Path(path)
    if not path.exists():
        raise XAIError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise XAIError(f"checkpoint {path} is not a file")
    try:
        digest = _sha256(path)
    except OSError as exc:
        raise XAIError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    req = _Request(path, arch, encoder, list(classes) if classes is not None else None, activation, digest)
    if is_safetensors(path):
        tensors, meta = read_safetensors(path)
        loaded = _from_project(req, tensors, meta) if meta is not None else _from_state_dict(req, tensors)
    else:
        obj, how = read_pickle(path, trust=trust_checkpoint, map_location=map_location)
        if how == "fallback":
            req.notes.append(
                "read with the restricted fallback unpickler (pickle protocol 4+ or the pre-1.6 format, "
                "which torch's weights-only reader cannot parse)"
            )
        elif how == "trusted":
            req.notes.append("unpickled with --trust_checkpoint (full unpickling)")
        loaded = _interpret(req, obj, trusted=how == "trusted")
    if isinstance(map_location, (str, torch.device)):
        loaded.model.to(map_location)
    loaded.model.eval()
    return loaded


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_state_dict(obj: Any) -> TypeGuard[Mapping[str, torch.Tensor]]:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _interpret(req: _Request, obj: Any, *, trusted: bool) -> LoadedModel:
    """Route what was unpickled: the legacy project format, a model tree, a state_dict, or a dict holding one."""
    if isinstance(obj, Mapping) and isinstance(obj.get("format"), str) and obj["format"].startswith("seedling-xai/"):
        return _from_project(req, *read_legacy(req.path, obj))
    if tree.is_module(obj):
        return _from_tree(req, obj, trusted)
    if _is_state_dict(obj):
        return _from_state_dict(req, dict(obj))
    if isinstance(obj, Mapping):
        for key in _WRAPPED_STATE_KEYS:
            value = obj.get(key)
            if tree.is_module(value):
                req.notes.append(f"model read from the checkpoint's '{key}' entry")
                return _from_tree(req, value, trusted)
            if _is_state_dict(value):
                req.notes.append(f"weights read from the checkpoint's '{key}' entry")
                return _from_state_dict(req, dict(value))
        keys = ", ".join(sorted(map(str, obj))[:8])
        raise XAIError(
            f"{req.path}: holds a dict without model weights (keys: {keys}); expected a model, a state_dict "
            "or a dict with 'model_state_dict'/'state_dict'"
        )
    raise XAIError(f"{req.path}: holds a {type(obj).__name__}, not a model, a state_dict or a {FORMAT} checkpoint")


def _from_project(req: _Request, state: dict[str, torch.Tensor], meta: ProjectMeta) -> LoadedModel:
    _check_count(req, len(meta.classes))
    arch = canonical_arch(meta.arch) or meta.arch
    for what, given, saved in (
        ("architecture", canonical_arch(req.arch) or req.arch, arch),
        ("encoder", req.encoder, meta.encoder),
    ):
        if given and given != saved:
            req.notes.append(f"{what} {saved} taken from the checkpoint (the config says {given})")
    if req.classes is not None and req.classes != meta.classes:
        req.notes.append(f"class names taken from the checkpoint: {', '.join(meta.classes)}")
    state = strip_prefixes(state, req.notes)
    kwargs = init_kwargs(arch, meta.model_kwargs) if meta.model_kwargs is not None else guess_kwargs(arch, state)
    model = build_and_load(req.path, arch, meta.encoder, len(meta.classes), meta.activation, state, kwargs, req.notes)
    return _result(
        req,
        model,
        "project",
        arch,
        meta.encoder,
        len(meta.classes),
        meta.activation,
        kwargs,
        classes=meta.classes,
        img_size=meta.img_size,
        mean=meta.mean,
        std=meta.std,
        preprocessing=meta.preprocessing,
    )


def _from_state_dict(req: _Request, state: dict[str, torch.Tensor]) -> LoadedModel:
    if not req.arch or not req.encoder:
        raise XAIError(
            f"{req.path}: holds only weights (a state_dict); name the architecture and encoder "
            "(config keys arch and encoder)"
        )
    state = strip_prefixes(state, req.notes)
    n = _class_count(req, state_classes(state))
    arch = canonical_arch(req.arch) or req.arch
    kwargs = guess_kwargs(arch, state)
    model = build_and_load(req.path, arch, req.encoder, n, req.activation, state, kwargs, req.notes)
    return _result(req, model, "state_dict", arch, req.encoder, n, req.activation, kwargs)


def _from_tree(req: _Request, root: Any, trusted: bool) -> LoadedModel:
    """A pickled model: rebuilt from its tensors (used as is only when trusted and every class is real)."""
    root = tree.unwrap(root, req.notes)
    if trusted and isinstance(root, nn.Module) and tree.all_real(root):
        return _as_is(req, root)
    info = tree.describe(root)
    file_arch = canonical_arch(info.arch)
    given_arch = canonical_arch(req.arch) or req.arch
    for what, given, saved in (("architecture", given_arch, file_arch), ("encoder", req.encoder, info.encoder)):
        if given and saved and given != saved:
            req.notes.append(f"{what} {saved} taken from the checkpoint (the config says {given})")
    arch, encoder = file_arch or given_arch, info.encoder or req.encoder
    if not arch or not encoder:
        raise XAIError(
            f"{req.path}: cannot tell which architecture/encoder this pickled model ({info.arch}) is; "
            "name them (config keys arch and encoder)"
        )
    state = tree.collect_state(root)
    if not state:
        raise XAIError(f"{req.path}: the pickled model holds no weights")
    n = _class_count(req, state_classes(state))
    act = info.activation if info.activation_found else req.activation
    if info.activation_found and req.activation is not None and req.activation != act:
        req.notes.append(f"head activation {act} read from the checkpoint (the config says {req.activation})")
    if info.init_args is not None:
        kwargs, source = init_kwargs(arch, info.init_args), "its init arguments"
    else:
        kwargs, source = guess_kwargs(arch, state), "the weights' shapes"
    model = build_and_load(req.path, arch, encoder, n, act, state, kwargs, req.notes)
    req.notes.append(
        f"rebuilt as {arch}/{encoder} with {n} classes and head activation {act} from the pickle's "
        f"weights (decoder settings from {source})"
    )
    return _result(req, model, "trusted_pickle" if trusted else "whole_model", arch, encoder, n, act, kwargs)


def _as_is(req: _Request, model: nn.Module) -> LoadedModel:
    """A trusted pickle whose classes are all real: the model itself (a user's own class included)."""
    from ..modeling import count_classes

    n = count_classes(model)
    if n is not None:
        _check_count(req, n)
    elif req.classes is not None:
        n = len(req.classes)
    else:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise XAIError(
                f"{req.path}: cannot tell the model's number of output classes; list the classes in the config"
            )
        n = int(convs[-1].out_channels)
    info = tree.describe(model)
    return _result(
        req,
        model,
        "trusted_pickle",
        canonical_arch(info.arch) or info.arch,
        info.encoder,
        n,
        info.activation if info.activation_found else None,
        None,
    )


def _class_count(req: _Request, n: int | None) -> int:
    if n is None:
        if req.classes is None:
            raise XAIError(
                f"{req.path}: cannot tell the number of output classes from the weights; list the classes in the config"
            )
        return len(req.classes)
    _check_count(req, n)
    return n


def _check_count(req: _Request, n: int) -> None:
    if req.classes is not None and len(req.classes) != n:
        raise XAIError(
            f"{req.path}: checkpoint has {n} output classes but the config lists {len(req.classes)}: "
            f"{', '.join(req.classes)}"
        )


def _result(
    req: _Request,
    model: nn.Module,
    kind: str,
    arch: str | None,
    encoder: str | None,
    n: int,
    activation: str | None,
    model_kwargs: dict[str, Any] | None,
    *,
    classes: list[str] | None = None,
    img_size: list[int] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    preprocessing: dict[str, Any] | None = None,
) -> LoadedModel:
    from ..modeling import outputs_probabilities

    classes = classes if classes is not None else req.classes
    return LoadedModel(
        model=model.eval(),
        kind=kind,
        arch=arch,
        encoder=encoder,
        classes=list(classes) if classes is not None else None,
        num_classes=int(n),
        img_size=tuple(int(v) for v in img_size) if img_size is not None else None,
        mean=tuple(float(v) for v in mean) if mean is not None else None,
        std=tuple(float(v) for v in std) if std is not None else None,
        outputs_probabilities=outputs_probabilities(model),
        sha256=req.sha256,
        notes=req.notes,
        preprocessing=preprocessing,
        activation=activation,
        model_kwargs=model_kwargs,
    )
