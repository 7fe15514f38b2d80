"""Everything a run resolves once: config, model, data, engines, class names and colours, layout, run info."""

from __future__ import annotations

import inspect
import json
import logging
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..checkpoint import LoadedModel, load_model
from ..config import Config, load_config
from ..data import SegmentationDataset, encoder_normalization, read_split
from ..errors import XAIError
from ..methods import BaseCAM, get_method
from ..modeling import pick_device
from .layout import Layout
from .options import RunOptions

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
GREY = (128, 128, 128)


@dataclass
class Setup:
    opts: RunOptions
    cfg: Config
    loaded: LoadedModel
    device: torch.device
    dataset: SegmentationDataset
    indices: list[int]
    class_names: list[str]
    class_ids: list[int]
    colors: list[tuple[int, int, int]]
    engines: dict[str, BaseCAM]
    layout: Layout
    run_info: dict[str, Any]
    run_key: dict[str, Any]
    notes: list[str]
    evaluator: Any = None  # xai.evaluation.evaluate.Evaluator with --evaluate

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    def label(self, method: str) -> str:
        return get_method(method).label


log = logging.getLogger(__name__)


def _data_root(opts: RunOptions, cfg: Config) -> Path:
    if opts.data_root:
        root = Path(opts.data_root)
        if not root.is_dir():
            raise XAIError(f"data root not found: {root}")
        return root
    root = Path(cfg.data_root)  # relative paths are relative to the working directory
    if root.is_dir():
        return root
    fallback = Path(cfg.fallback_data_root) if cfg.fallback_data_root else None
    if fallback is not None and fallback.is_dir():
        log.warning(
            "note: %s not found in %s; using the synthetic demo dataset %s", cfg.data_root, Path.cwd(), fallback
        )
        return fallback
    tried = f"{root}" + (f" nor {fallback}" if fallback is not None else "")
    raise XAIError(
        f"data root not found: neither --data_root nor the config's {tried} exists in {Path.cwd()} "
        "(pass --data_root, or make a synthetic dataset: seedling-xai synth --out data/demo)"
    )


def build_engine(method: str, model: torch.nn.Module, opts: RunOptions, target_layer: str | None) -> BaseCAM:
    """The method's engine with the options its constructor takes (looked up by parameter name)."""
    cls = get_method(method).cls
    params = inspect.signature(cls.__init__).parameters
    kwargs = {
        name: getattr(opts, name)
        for name in params
        if name not in ("self", "model", "target_layer", "progress") and hasattr(opts, name)
    }
    return cls(model, target_layer=target_layer, **kwargs)


def _versions() -> dict[str, str]:
    import cv2
    import matplotlib
    import numpy as np
    import segmentation_models_pytorch as smp

    return {
        "xai": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "segmentation_models_pytorch": smp.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "matplotlib": matplotlib.__version__,
    }


def prepare(opts: RunOptions) -> Setup:
    """Resolve config, model, data and engines; every problem surfaces here as one XAIError line."""
    if not Path(opts.model_path).exists():
        raise XAIError(f"model file not found: {opts.model_path}")
    if not opts.methods:
        raise XAIError("no method to run: name at least one with --methods")
    for m in opts.methods:
        get_method(m)
    cfg = load_config(opts.config)
    device = pick_device(opts.device)
    loaded = load_model(
        opts.model_path,
        arch=opts.arch or cfg.arch,
        encoder=opts.encoder or cfg.encoder,
        classes=list(cfg.classes),
        trust_checkpoint=opts.trust_checkpoint,
    )
    if opts.encoder and loaded.kind == "project" and loaded.encoder and opts.encoder != loaded.encoder:
        raise XAIError(
            f"{opts.model_path} was trained with encoder {loaded.encoder}, but --encoder {opts.encoder} was given"
        )
    class_names = list(loaded.classes) if loaded.classes else list(cfg.classes)
    unsafe = [c for c in class_names if not SAFE_NAME.match(str(c))]
    if unsafe:
        raise XAIError(
            f"class name(s) {', '.join(map(repr, unsafe))} cannot be used in file names "
            "(letters, digits, '_', '-', '.' only)"
        )
    img_size = tuple(opts.img_size) if opts.img_size else tuple(loaded.img_size or cfg.img_size)
    if len(img_size) != 2 or not all(isinstance(v, int) and v > 0 for v in img_size):
        raise XAIError(f"image size must be two positive integers (width height), got {list(img_size)}")
    mean, std = (
        (loaded.mean, loaded.std)
        if loaded.mean and loaded.std
        else encoder_normalization(loaded.encoder or cfg.encoder)
    )
    loaded.model.to(device).eval()

    root = _data_root(opts, cfg)
    names = read_split(root, opts.split, cfg.split_file)
    dataset = SegmentationDataset(
        root,
        opts.split,
        palette=cfg.class_colors(),
        img_size=(img_size[0], img_size[1]),
        mean=mean,
        std=std,
        split_file=cfg.split_file,
        names=names,
        skip_errors=True,
    )
    if not opts.all and opts.num_samples < 1:
        raise XAIError(f"--num_samples must be at least 1, got {opts.num_samples}")
    indices = list(range(len(names))) if opts.all else list(range(min(opts.num_samples, len(names))))

    if opts.classes:
        unknown = [c for c in opts.classes if c not in class_names]
        if unknown:
            raise XAIError(f"unknown class(es) {', '.join(unknown)}; the model's classes are {', '.join(class_names)}")
        class_ids = [class_names.index(c) for c in opts.classes]
    else:
        class_ids = list(range(len(class_names)))
    palette = cfg.class_colors()
    colors = [palette[i] if i < len(palette) else GREY for i in range(len(class_names))]

    target_layer = opts.target_layer or cfg.target_layer
    engines = {m: build_engine(m, loaded.model, opts, target_layer) for m in opts.methods}
    layout = Layout(
        out=Path(opts.output_dir),
        class_names=tuple(class_names),
        class_ids=tuple(class_ids),
        method_folders=tuple((m, get_method(m).folder) for m in opts.methods),
        comparison=opts.comparison,
    )
    evaluator, evaluation, evaluation_key = None, None, None
    if opts.evaluate or opts.variants:
        evaluator, evaluation, evaluation_key = _evaluator(
            opts, loaded.model, engines, class_ids, class_names, target_layer, road_noise=0.01 / (sum(std) / len(std))
        )
    engine_options = {m: e.options.as_dict() for m, e in engines.items()}
    run_key = {
        "checkpoint": loaded.sha256,
        "classes": [class_names[c] for c in class_ids],
        "img_size": list(img_size),
        "methods": list(opts.methods),
        "engines": {m: e.options.result_key() for m, e in engines.items()},
        "evaluation": evaluation_key,
        "split": opts.split,
        "data_root": str(root),
    }
    run_info = {
        "command": list(opts.command),
        "versions": _versions(),
        "config": cfg.to_dict(),
        "checkpoint": {
            "path": str(opts.model_path),
            "sha256": loaded.sha256,
            "kind": loaded.kind,
            "arch": loaded.arch,
            "encoder": loaded.encoder,
        },
        "device": str(device),
        "data_root": str(root),
        "split": opts.split,
        "region": opts.region,
        "save_raw": opts.save_raw,
        "classes": [class_names[c] for c in class_ids],
        "class_names": class_names,
        "colors": [list(c) for c in colors],
        "methods": {m: {"label": get_method(m).label, "folder": get_method(m).folder} for m in opts.methods},
        "engines": engine_options,
        "evaluation": evaluation,
    }
    return Setup(
        opts=opts,
        cfg=cfg,
        loaded=loaded,
        device=device,
        dataset=dataset,
        indices=indices,
        class_names=class_names,
        class_ids=class_ids,
        colors=colors,
        engines=engines,
        layout=layout,
        run_info=json.loads(json.dumps(run_info)),
        run_key=json.loads(json.dumps(run_key)),
        notes=list(loaded.notes or []),
        evaluator=evaluator,
    )


def _evaluator(
    opts: RunOptions,
    model: torch.nn.Module,
    engines: dict[str, BaseCAM],
    class_ids: list[int],
    class_names: list[str],
    target_layer: str | None,
    road_noise: float,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The evaluator of --evaluate: the run's methods and --variants, each an engine built once; with its
    description (manifest) and what its numbers depend on (resume key: no batch sizes)."""
    from ..evaluation.evaluate import REFERENCES, EvaluationSettings, Evaluator
    from ..evaluation.variants import Variant, parse_variants

    if opts.eval_steps < 2:
        raise XAIError(f"--eval_steps must be at least 2, got {opts.eval_steps}")
    variants = [Variant(label=m, method=m, overrides=()) for m in opts.methods]
    for v in parse_variants(list(opts.variants)):
        if v.label not in {x.label for x in variants}:
            variants.append(v)
    built = dict(engines)
    for v in variants:
        if v.label not in built:
            vo = v.options(opts)
            built[v.label] = build_engine(v.method, model, vo, vo.target_layer or target_layer)
    settings = EvaluationSettings(
        steps=opts.eval_steps,
        road=opts.road,
        sanity_samples=opts.sanity_samples,
        batch_size=opts.batch_size,
        seed=opts.seed,
        road_noise=road_noise,
    )
    evaluator = Evaluator(model, built, variants, class_ids, class_names, opts.region, settings)
    described = {
        "settings": settings.describe(),
        "references": REFERENCES,
        "variants": {v.label: {"method": v.method, "options": built[v.label].options.as_dict()} for v in variants},
    }
    key = {
        "settings": {k: v for k, v in settings.describe().items() if k != "batch_size"},
        "variants": {v.label: {"method": v.method, "options": built[v.label].options.result_key()} for v in variants},
    }
    return evaluator, json.loads(json.dumps(described)), json.loads(json.dumps(key))
