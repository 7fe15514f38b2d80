"""One call from Python: `xai.explain(model, images)`, through the pipeline the CLIs run (xai.pipeline).

    import xai
    result = xai.explain("best_model_FPN.safetensors", "seedling.jpg", methods=("scorecam", "gradcam"))
    result.show("root")                  # photograph | prediction | each method's map of the class
    result.maps["scorecam"]              # C'×H×W float32 in [0, 1] on the photograph

The model is a checkpoint path (any kind the CLIs load), a model `xai.load_model` gave, or an `nn.Module`
(with its input size and normalisation, or a config that has them). Images are paths, folders or globs
(as --images takes them), H×W×3 uint8 RGB arrays or PIL images, one or a list. Options are the CLIs' by
name: run options (xai.pipeline.RunOptions: `img_size`, `device`, `profile`, `map_dtype`, `seed`,
`samples_per_call`, the evaluation's) and the methods' own (`target_layer`, `max_activation_maps`,
`region`, `batch_size`, ...: xai.options).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import LoadedModel
from .data import read_image
from .errors import XAIError
from .explanation import Explanation, Explanations, Session
from .methods import get_method
from .options import Options
from .photographs import Photographs, find_photographs, printable

__all__ = ["explain"]

IN_MEMORY = "(in memory)"  # the manifest's checkpoint path of a model given as an object
NOT_FROM_PYTHON = (  # run options that say where files and samples are: the call's arguments say it instead
    "model_path", "methods", "classes", "images", "num_samples", "all", "split", "data_root", "output_dir",
    "resume", "workers", "save_raw", "method_options", "command",
)  # fmt: skip


def explain(
    model: str | Path | LoadedModel | nn.Module,
    images: Any,
    methods: str | Sequence[str] = ("scorecam",),
    classes: Sequence[str | int] | None = None,
    *,
    img_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **options: Any,
) -> Explanation | Explanations:
    """Explain photographs with one or more methods, as `--images` does from the command line.

    Args:
        model: a checkpoint path, a `xai.load_model` result, or an `nn.Module` (then `img_size` and
            `mean`/`std`, or `config=`, give its input; its classes are the config's unless `class_names=`).
        images: a path, folder or glob, an H×W×3 uint8 RGB array, a PIL image, or a list of them.
        methods: registry names (`xai.methods.method_names()`), e.g. ("scorecam", "gradcam").
        classes: the classes to explain, by name or output id (default: every class).
        img_size: (width, height) of the model's input (default: the checkpoint's, else the config's).
        mean, std: the input normalisation (default: the checkpoint's, else the encoder's).
        **options: run options and method options by name (module docstring).

    Returns:
        An `Explanation` for one image, else `Explanations` (a list of them, in the order given).
    """
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    run_values, method_values = _sort_options(options, methods)
    loaded = _loaded(model, img_size, mean, std)
    photographs, single = _read(images, run_values.get("max_pixels"))
    session = Session.open(
        loaded,
        photographs,
        methods=methods,
        run_values={**run_values, "img_size": img_size} if img_size is not None else run_values,
        method_values=method_values,
        classes=classes,
        model_path=str(model) if isinstance(model, (str, Path)) else IN_MEMORY,
    )
    explained = session.explain_all()
    return explained[0] if single else explained


def _sort_options(options: dict[str, Any], methods: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run options, method options) of the keyword arguments; a name that is neither is refused in one line."""
    from .batching import BatchOptions
    from .methods.base import ExplainerOptions
    from .pipeline.options import RunOptions

    run_names = [n for n in RunOptions.names() if n not in NOT_FROM_PYTHON]
    declared: list[type[Options]] = [get_method(m).options for m in methods] + [ExplainerOptions, BatchOptions]
    method_names = sorted({n for cls in declared for n in cls.names()})
    unknown = [k for k in options if k not in run_names and k not in method_names]
    if unknown:
        raise XAIError(
            f"xai.explain() has no option {', '.join(map(repr, unknown))}; run options: {', '.join(run_names)}; "
            f"options of {', '.join(methods)}: {', '.join(method_names)}"
        )
    if callable(options.get("score")):
        raise XAIError(
            "xai.explain explains the model's classes; a custom score (a callable) is for the engines: "
            "xai.ScoreCAM(model, score=...).explain(x) (docs: Python API, custom scoring)"
        )
    run = {k: v for k, v in options.items() if k in run_names}
    return run, {k: v for k, v in options.items() if k not in run}


def _loaded(
    model: Any, img_size: Sequence[int] | None, mean: Sequence[float] | None, std: Sequence[float] | None
) -> LoadedModel | None:
    """The model as the pipeline takes it: None for a path (the pipeline loads it), else a LoadedModel whose
    input size and normalisation are those given where given."""
    if isinstance(model, (str, Path)):
        if mean is not None or std is not None:
            raise XAIError("mean and std are given with an nn.Module; a checkpoint says its own (or its encoder's)")
        return None
    if isinstance(model, LoadedModel):
        loaded = model
    elif isinstance(model, nn.Module):
        loaded = LoadedModel(
            model=model,
            kind="module",
            arch=type(model).__name__,
            encoder=None,
            classes=None,
            num_classes=_outputs(model),
            img_size=None,
            mean=None,
            std=None,
            outputs_probabilities=False,
            sha256=_weights_sha256(model),
        )
    else:
        raise XAIError(
            f"model must be a checkpoint path, a xai.load_model() result or an nn.Module, not {type(model).__name__}"
        )
    if (mean is None) != (std is None):
        raise XAIError("give mean and std together (the input normalisation, one value per channel)")
    changes: dict[str, Any] = {}
    if img_size is not None:
        changes["img_size"] = tuple(img_size)
    if mean is not None and std is not None:
        changes.update(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))
    return dataclasses.replace(loaded, **changes) if changes else loaded


def _outputs(model: nn.Module) -> int:
    """The output channels of an smp model's segmentation head (0 when the model does not say)."""
    head = getattr(model, "segmentation_head", None)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)] if isinstance(head, nn.Module) else []
    return int(convs[-1].out_channels) if convs else 0


def _weights_sha256(model: nn.Module) -> str:
    """A digest of the model's weights (the resume key's checkpoint when the model was given as an object);
    a tensor without data (the meta device) counts by its shape and dtype."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        if tensor.device.type != "meta":
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _read(images: Any, max_pixels: int | None) -> tuple[Any, bool]:
    """(xai.pipeline.setup.GivenPhotographs, whether one image was given): paths, folders and globs found as
    --images finds them, every photograph read now, so that an unreadable one is refused before any work."""
    from .data import DEFAULT_MAX_PIXELS
    from .pipeline.setup import GivenPhotographs

    single = isinstance(images, (str, Path, np.ndarray)) or _is_pil(images)
    if single and isinstance(images, (str, Path)) and not Path(images).is_file():
        single = False  # a folder or a glob
    items = [images] if single or isinstance(images, (str, Path)) else list(images)
    if not items:
        raise XAIError("no image to explain: images is empty")
    given = GivenPhotographs([], [], [], Photographs())
    for i, item in enumerate(items):
        if isinstance(item, (str, Path)):
            found = find_photographs([str(item)])
            given.found.paths += found.paths
            given.found.skipped += found.skipped
            for path, name in zip(found.paths, found.names, strict=True):
                given.rgbs.append(read_image(path, max_pixels or DEFAULT_MAX_PIXELS))
                given.names.append(name)
                given.sources.append(str(path))
        else:
            given.rgbs.append(_rgb(item, i))
            given.names.append(printable(Path(getattr(item, "filename", "") or f"image{i}").name))
            given.sources.append(None)
    return given, single and len(given.rgbs) == 1


def _is_pil(item: Any) -> bool:
    return type(item).__module__.startswith("PIL.")


def _rgb(item: Any, i: int) -> np.ndarray:
    """An in-memory image as H×W×3 uint8 RGB; anything else refused in one line."""
    if _is_pil(item):
        return np.asarray(item.convert("RGB")).copy()
    if not isinstance(item, np.ndarray):
        raise XAIError(
            f"image {i}: a path, an H×W×3 uint8 RGB array or a PIL image is needed, not {type(item).__name__}"
        )
    if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3 or min(item.shape[:2]) < 1:
        raise XAIError(
            f"image {i}: an H×W×3 uint8 RGB array is needed, got {item.dtype} of shape {item.shape} "
            "(a float image in [0, 1]: (image * 255).round().astype('uint8'))"
        )
    return np.ascontiguousarray(item)
