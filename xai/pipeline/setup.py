"""Everything a run resolves once: config, model, data, engines, class names and colours, layout, run info."""

from __future__ import annotations

import dataclasses
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
from ..data import Preprocessing, SegmentationDataset, encoder_normalization, read_split
from ..errors import XAIError, option
from ..mapfile import check_map_dtype
from ..methods import Explainer, get_method, methods
from ..modeling import pick_device
from ..options import Options
from ..precision import numerics
from .layout import Layout
from .options import RunOptions
from .outputs import output_kinds

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
GREY = (128, 128, 128)
log = logging.getLogger(__name__)


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
    engines: dict[str, Explainer]
    layout: Layout
    run_info: dict[str, Any]
    run_key: dict[str, Any]
    notes: list[str]
    evaluator: Any = None  # xai.evaluation.evaluate.Evaluator with --evaluate

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def region(self) -> str:
        return self.opts.region

    def label(self, method: str) -> str:
        return get_method(method).label


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
        f"data root not found: neither {option('data_root')} nor the config's {tried} exists in {Path.cwd()} "
        "(make a synthetic dataset: seedling-xai synth --out data/demo)"
    )


def method_options(
    method: str, opts: RunOptions, cfg: Config | None = None, normalization: tuple[Any, Any] | None = None
) -> Options:
    """The options of `method` in this run: its profile, the config's target layer, the run's seed and
    the inputs' normalisation (mean, std) where the method declares them, then the run's method_options
    that the method declares."""
    declared = get_method(method).options
    names = set(declared.names())
    values: dict[str, Any] = {}
    if cfg is not None and cfg.target_layer and "target_layer" in names:
        values["target_layer"] = cfg.target_layer
    if "seed" in names:
        values["seed"] = opts.seed
    if normalization is not None and "input_mean" in names:
        values["input_mean"], values["input_std"] = tuple(normalization[0]), tuple(normalization[1])
    values.update({k: v for k, v in opts.method_options.items() if k in names and v is not None})
    base = declared.profile(opts.profile) if opts.profile in declared.PROFILES else declared()
    return base.replace(**values)


def build_engine(method: str, model: torch.nn.Module, options: Options) -> Explainer:
    """The method's engine with its options (xai.options): `Method(model, options)`."""
    return get_method(method).cls(model, options)  # type: ignore[arg-type]  # the method's own Options class


def _check_run_options(opts: RunOptions, variants: list[str]) -> None:
    """Profiles, and method options that no method of the run declares (said once, then ignored)."""
    profiles = {"default"} | {p for info in methods().values() for p in info.options.PROFILES}
    if opts.profile not in profiles:
        raise XAIError(f"unknown {option('profile')} '{opts.profile}': choose one of {', '.join(sorted(profiles))}")
    used = {n for m in [*opts.methods, *variants] for n in get_method(m).options.names()}
    if opts.evaluate or opts.variants:
        used.add("batch_size")  # the evaluation's forwards
    unused = [k for k, v in opts.method_options.items() if v is not None and k not in used]
    if unused:
        log.warning("note: %s: not an option of %s, so it has no effect", ", ".join(unused), ", ".join(opts.methods))


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


def _model(opts: RunOptions, cfg: Config, device: torch.device) -> LoadedModel:
    if not Path(opts.model_path).exists():
        raise XAIError(f"model file not found: {opts.model_path}")
    loaded = load_model(
        opts.model_path,
        arch=opts.arch or cfg.arch,
        encoder=opts.encoder or cfg.encoder,
        classes=list(cfg.classes),
        trust_checkpoint=opts.trust_checkpoint,
    )
    if opts.encoder and loaded.kind == "project" and loaded.encoder and opts.encoder != loaded.encoder:
        raise XAIError(
            f"{opts.model_path} was trained with encoder {loaded.encoder}, but {option('encoder')} "
            f"{opts.encoder} was given"
        )
    loaded.model.to(device).eval()
    return loaded


def _class_names(loaded: LoadedModel, cfg: Config, asked: Any, given: Any = None) -> tuple[list[str], list[int]]:
    names = list(loaded.classes) if loaded.classes else list(cfg.classes)
    if given:
        if len(given) != len(names):
            raise XAIError(
                f"{option('class_names')} names {len(given)} classes, but the model has {len(names)} outputs"
            )
        names = [str(n) for n in given]
    unsafe = [c for c in names if not SAFE_NAME.match(str(c))]
    if unsafe:
        raise XAIError(
            f"class name(s) {', '.join(map(repr, unsafe))} cannot be used in file names "
            "(letters, digits, '_', '-', '.' only)"
        )
    if not asked:
        return names, list(range(len(names)))
    unknown = [c for c in asked if c not in names]
    if unknown:
        raise XAIError(f"unknown class(es) {', '.join(unknown)}; the model's classes are {', '.join(names)}")
    return names, [names.index(c) for c in asked]


def _dataset(opts: RunOptions, cfg: Config, loaded: LoadedModel) -> tuple[SegmentationDataset, list[int], Path]:
    img_size = tuple(opts.img_size) if opts.img_size else tuple(loaded.img_size or cfg.img_size)
    if len(img_size) != 2 or not all(isinstance(v, int) and v > 0 for v in img_size):
        raise XAIError(f"{option('img_size')} must be two positive integers (width height), got {list(img_size)}")
    mean, std = (
        (loaded.mean, loaded.std)
        if loaded.mean and loaded.std
        else encoder_normalization(loaded.encoder or cfg.encoder)
    )
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
        preprocessing=Preprocessing(**loaded.preprocessing) if loaded.preprocessing else cfg.preprocess(),
        ignore_index=cfg.ignore_index,
        max_pixels=opts.max_pixels,
    )
    if opts.samples_per_call < 1:
        raise XAIError(f"{option('samples_per_call')} must be at least 1, got {opts.samples_per_call}")
    if opts.max_pixels < 1:
        raise XAIError(f"{option('max_pixels')} must be at least 1, got {opts.max_pixels}")
    if not opts.all and opts.num_samples < 1:
        raise XAIError(f"{option('num_samples')} must be at least 1, got {opts.num_samples}")
    indices = list(range(len(names))) if opts.all else list(range(min(opts.num_samples, len(names))))
    return dataset, indices, root


def prepare(opts: RunOptions) -> Setup:
    """Resolve config, model, data and engines; every problem surfaces here as one XAIError line."""
    if not opts.methods:
        raise XAIError(f"no method to run: name at least one in {option('methods')}")
    check_map_dtype(opts.map_dtype)
    for m in opts.methods:
        get_method(m)
    cfg = load_config(opts.config)
    device = pick_device(opts.device)
    loaded = _model(opts, cfg, device)
    class_names, class_ids = _class_names(loaded, cfg, opts.classes, opts.class_names)
    dataset, indices, root = _dataset(opts, cfg, loaded)
    palette = cfg.class_colors()
    by_name = dict(zip(cfg.classes, palette, strict=True))
    colors = [  # a class's colour by its name in the palette, else by its id
        by_name[n] if n in by_name else palette[i] if i < len(palette) else GREY for i, n in enumerate(class_names)
    ]
    norm = (dataset.mean, dataset.std)
    engines = {m: build_engine(m, loaded.model, method_options(m, opts, cfg, norm)) for m in opts.methods}
    for engine in engines.values():
        engine.check_size(dataset.img_size[1], dataset.img_size[0])
    described = [(m, get_method(m).label, get_method(m).folder, get_method(m).family) for m in opts.methods]
    kinds = output_kinds(described, opts.comparison)
    layout = Layout(Path(opts.output_dir), tuple(class_names), tuple(class_ids), tuple(kinds))
    evaluator, evaluation, evaluation_key = None, None, None
    if opts.evaluate or opts.variants:
        evaluator, evaluation, evaluation_key = _evaluator(
            opts, cfg, norm, loaded.model, engines, class_ids, class_names
        )
    else:
        _check_run_options(opts, [])
    explained = [class_names[c] for c in class_ids]
    run_key = {
        "checkpoint": loaded.sha256,
        "classes": explained,
        "img_size": list(dataset.img_size),
        "methods": list(opts.methods),
        "engines": {m: e.options.result_key() for m, e in engines.items()},
        "map_dtype": opts.map_dtype,  # the maps are rounded to it: figures, summaries and metrics change
        "evaluation": evaluation_key,
        "split": opts.split,
        "data_root": str(root),
        "preprocessing": dataclasses.asdict(dataset.preprocessing),
        "ignore_index": cfg.ignore_index,
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
        "numerics": numerics(
            device, {m: e.options.precision for m, e in engines.items() if hasattr(e.options, "precision")}
        ),
        "data_root": str(root),
        "preprocessing": dataclasses.asdict(dataset.preprocessing),
        "split": opts.split,
        "region": opts.region,
        "save_raw": opts.save_raw,
        "map_dtype": opts.map_dtype,
        "classes": explained,
        "class_names": class_names,
        "colors": [list(c) for c in colors],
        "methods": {m: {"label": get_method(m).label, "folder": get_method(m).folder} for m in opts.methods},
        "outputs": [k.describe() for k in kinds],
        "engines": {m: e.options.describe() for m, e in engines.items()},
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


def _pairs(asked: tuple[str, ...], labels: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for text in asked:
        a, sep, b = text.partition("@")
        if not sep or a not in labels or b not in labels or a == b:
            raise XAIError(
                f"{option('pairs')} wants A@B with two different evaluated variants, got '{text}'; "
                f"the variants: {', '.join(labels)}"
            )
        out.append((a, b))
    return tuple(out)


def _evaluator(
    opts: RunOptions,
    cfg: Config,
    norm: tuple[Any, Any],
    model: torch.nn.Module,
    engines: dict[str, Explainer],
    class_ids: list[int],
    class_names: list[str],
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The evaluator of --evaluate: the run's methods and --variants, each an engine built once; with its
    description (manifest) and what its numbers depend on (resume key: no batch sizes)."""
    from ..evaluation.evaluate import REFERENCES, EvaluationSettings, Evaluator
    from ..evaluation.variants import Variant, parse_variants

    if opts.eval_steps < 2:
        raise XAIError(f"{option('eval_steps')} must be at least 2, got {opts.eval_steps}")
    if opts.stability_samples < 0:
        raise XAIError(f"{option('stability_samples')} must be at least 0, got {opts.stability_samples}")
    variants = [Variant(label=m, method=m, overrides=()) for m in opts.methods]
    for v in parse_variants(list(opts.variants)):
        if v.label not in {x.label for x in variants}:
            variants.append(v)
    _check_run_options(opts, [v.method for v in variants])
    built = dict(engines)
    for v in variants:
        if v.label not in built:
            built[v.label] = build_engine(v.method, model, v.options(method_options(v.method, opts, cfg, norm)))
    settings = EvaluationSettings(
        steps=opts.eval_steps,
        road=opts.road,
        sanity_samples=opts.sanity_samples,
        batch_size=opts.batch_size,
        compile=opts.compile,
        cudnn_benchmark=opts.cudnn_benchmark,
        map_dtype=opts.map_dtype,
        seed=opts.seed,
        road_noise=0.01 / (sum(norm[1]) / len(norm[1])),  # the authors' 0.01 on [0, 1] images
        stability_samples=opts.stability_samples,
        stability_radius=0.02 / (sum(norm[1]) / len(norm[1])),  # ±0.02 of the [0, 1] intensity range
        instances=opts.region == "instances",
        pairs=_pairs(opts.pairs, [v.label for v in variants] + list(REFERENCES)),
    )
    evaluator = Evaluator(model, built, variants, class_ids, class_names, opts.region, settings)
    described = {
        "settings": settings.describe(),
        "references": {name: r.description for name, r in REFERENCES.items()},
        "variants": {v.label: {"method": v.method, "options": built[v.label].options.describe()} for v in variants},
    }
    key = {
        "settings": {
            k: v
            for k, v in settings.describe().items()
            if k not in ("batch_size", "compile", "cudnn_benchmark", "pairs")
        },
        "variants": {v.label: {"method": v.method, "options": built[v.label].options.result_key()} for v in variants},
    }
    return evaluator, json.loads(json.dumps(described)), json.loads(json.dumps(key))
