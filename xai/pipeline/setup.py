"""Everything a run resolves once: config, model, data, engines, class names and colours, layout, run info."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batching import BatchOptions
from ..checkpoint import LoadedModel, load_model
from ..config import Config, load_config
from ..data import (
    IMAGE_DIR,
    Preprocessing,
    SegmentationDataset,
    check_input_size,
    encoder_normalization,
    read_split,
)
from ..errors import XAIError, option
from ..layers import model_device
from ..methods import Explainer, get_method
from ..methods.base import region_of as explainer_region
from ..modeling import pick_device
from ..options import Options
from ..photographs import PhotographArrays, PhotographDataset, Photographs, find_photographs, is_photograph
from ..precision import precision_choice
from ..targets import Region, resolve_class
from .description import ModelInput, RunDescription
from .execution import Execution
from .layout import Layout
from .options import RunOptions, check_images_region
from .outputs import output_kinds
from .sample_outputs import Presentation

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
GREY = (128, 128, 128)
log = logging.getLogger(__name__)


@dataclass
class Setup:
    opts: RunOptions
    cfg: Config
    loaded: LoadedModel
    device: torch.device
    dataset: SegmentationDataset | PhotographDataset
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
    photographs: Photographs | None = None  # what --images resolved to (None: a split)

    @property
    def model(self) -> torch.nn.Module:
        return self.loaded.model

    @property
    def region(self) -> str:
        return self.opts.region

    @property
    def region_spec(self) -> Region:
        """The run's region with its band width and junction classes (xai.targets.Region)."""
        return region_of(self.opts, self.class_names)

    def label(self, method: str) -> str:
        return get_method(method).label

    def execution(self) -> Execution:
        """What the explain stage's model execution needs of the run."""
        return Execution(
            engines=self.engines,
            class_ids=list(self.class_ids),
            device=self.device,
            map_dtype=self.opts.map_dtype,
            save_raw=self.opts.save_raw,
            evaluator=self.evaluator,
        )

    def presentation(self) -> Presentation:
        """What a sample's outputs (figures, summary rows, maps file) need of the run."""
        return Presentation(
            class_names=list(self.class_names),
            class_ids=list(self.class_ids),
            colors=list(self.colors),
            region=self.region,
            region_spec=self.region_spec,
            layout=self.layout,
            map_dtype=self.opts.map_dtype,
        )


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
    run_values: dict[str, Any] = dict(seed=opts.seed)
    if cfg is not None and cfg.target_layer:
        run_values.update(target_layer=cfg.target_layer)
    if normalization is not None:
        run_values.update(input_mean=tuple(normalization[0]), input_std=tuple(normalization[1]))
    values = {**declared.declared_in(run_values), **declared.declared_in(opts.method_options)}
    base = declared.of_profile(opts.profile) if opts.profile in declared.PROFILES else declared()
    return base.replace(**values)


def build_engine(
    method: str, model: torch.nn.Module, options: Options, class_names: list[str] | None = None
) -> Explainer:
    """The method's engine with its options (xai.options): `Method(model, options)`; class_names: the names
    its contrast and junction options may use (checked now)."""
    engine = get_method(method).cls(model, options)  # type: ignore[arg-type]  # the method's own Options class
    if class_names is not None:
        engine.name_classes(class_names)
    return engine


def _note_unused_options(opts: RunOptions, variants: list[str]) -> None:
    """Method options that no method of the run declares (said once, then ignored)."""
    used = {n for m in [*opts.methods, *variants] for n in get_method(m).options.names()}
    if opts.evaluate:
        used.update(BatchOptions.names())  # the evaluation's forwards
    unused = [k for k, v in opts.method_options.items() if v is not None and k not in used]
    if unused:
        log.warning("note: %s: not an option of %s, so it has no effect", ", ".join(unused), ", ".join(opts.methods))


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


def region_of(opts: RunOptions, class_names: list[str]) -> Region:
    """The run's region (the methods' shared options) with junction's classes resolved by name."""
    return explainer_region(opts.explainer, class_names, len(class_names))


def _class_names(loaded: LoadedModel, cfg: Config, asked: Any, given: Any = None) -> tuple[list[str], list[int]]:
    names = list(loaded.classes) if loaded.classes else list(cfg.classes)
    if given:
        outputs = loaded.num_classes or len(names)
        if len(given) != outputs:
            raise XAIError(f"{option('class_names')} names {len(given)} classes, but the model has {outputs} outputs")
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


def _model_input(opts: RunOptions, cfg: Config, loaded: LoadedModel) -> ModelInput:
    """The input the run feeds the model; a size outside the declared bound (xai.data.MAX_INPUT_SIDE) is
    refused here, in one line, before any photograph is read."""
    size: Sequence[int]
    if opts.img_size:
        size, source = opts.img_size, option("img_size")
    elif loaded.img_size:
        size, source = tuple(loaded.img_size), f"the checkpoint {opts.model_path}"
    else:
        size, source = cfg.img_size, f"the config {opts.config or 'phenocyte'}"
    mean, std = (
        (loaded.mean, loaded.std)
        if loaded.mean and loaded.std
        else encoder_normalization(loaded.encoder or cfg.encoder)
    )
    return ModelInput(
        img_size=check_input_size(size, source),
        size_from=source.replace("⟨img_size⟩", "--img_size"),
        mean=tuple(mean),
        std=tuple(std),
        preprocessing=Preprocessing(**loaded.preprocessing) if loaded.preprocessing else cfg.preprocess(),
    )


def _split_file_hint(root: Path, split_file: str) -> None:
    """A data root without its split file that holds photographs is refused with the way to explain them."""
    if (root / split_file).is_file():
        return
    for folder in (root, root / IMAGE_DIR):
        if folder.is_dir() and any(p.is_file() and is_photograph(p) for p in folder.iterdir()):
            raise XAIError(
                f"split file not found: {root / split_file}; to explain the photographs of {folder} without "
                f"masks: {option('images')} {folder}"
            )


@dataclass
class GivenPhotographs:
    """Photographs already read (xai.explain): each one's pixels (H×W×3 uint8 RGB), the name it is shown by,
    its path (None for an array), and what was found and skipped among the paths given."""

    rgbs: list[np.ndarray]
    names: list[str]
    sources: list[str | None]
    found: Photographs


def _photographs(
    opts: RunOptions, model_input: ModelInput, given: GivenPhotographs | None = None
) -> tuple[PhotographDataset, list[int], Photographs]:
    """The photographs of --images (xai.photographs), or those given, the first sample_limit of them, and what
    was skipped."""
    preprocessing: dict[str, Any] = dict(
        img_size=model_input.img_size,
        mean=model_input.mean,
        std=model_input.std,
        preprocessing=model_input.preprocessing,
        skip_errors=given is None,
        max_pixels=opts.max_pixels,
    )
    if given is None:
        found = find_photographs(opts.images)
        dataset = PhotographDataset(found, **preprocessing)
    else:
        found = given.found
        dataset = PhotographArrays(given.rgbs, given.names, given.sources, found, **preprocessing)
    limit = opts.sample_limit
    return dataset, list(range(len(dataset) if limit is None else min(limit, len(dataset)))), found


def _dataset(opts: RunOptions, cfg: Config, model_input: ModelInput) -> tuple[SegmentationDataset, list[int]]:
    root = _data_root(opts, cfg)
    _split_file_hint(root, cfg.split_file)
    names = read_split(root, opts.split, cfg.split_file)
    dataset = SegmentationDataset(
        root,
        opts.split,
        palette=cfg.class_colors(),
        img_size=model_input.img_size,
        mean=model_input.mean,
        std=model_input.std,
        split_file=cfg.split_file,
        names=names,
        skip_errors=True,
        preprocessing=model_input.preprocessing,
        ignore_index=cfg.ignore_index,
        max_pixels=opts.max_pixels,
    )
    limit = opts.sample_limit
    return dataset, list(range(len(names) if limit is None else min(limit, len(names))))


def _colors(cfg: Config, class_names: list[str]) -> list[tuple[int, int, int]]:
    """A class's colour by its name in the config's palette, else by its id, else grey."""
    palette = cfg.class_colors()
    by_name = dict(zip(cfg.classes, palette, strict=True))
    return [by_name[n] if n in by_name else palette[i] if i < len(palette) else GREY for i, n in enumerate(class_names)]


@dataclass
class Resolved:
    """What a run resolves before its samples: config, device, the model, the class names and the explained
    ids, the model's input."""

    cfg: Config
    device: torch.device
    loaded: LoadedModel
    class_names: list[str]
    class_ids: list[int]
    model_input: ModelInput


def resolve(opts: RunOptions, model: LoadedModel | None = None) -> Resolved:
    """Config, device, model (loaded from opts.model_path, or the one given, moved to the device), classes
    and input; every problem one XAIError line."""
    if not opts.methods:
        raise XAIError(f"no method to run: name at least one in {option('methods')}")
    for m in opts.methods:
        get_method(m)
    cfg = load_config(opts.config)
    device = pick_device(opts.device)
    if model is None:
        loaded = _model(opts, cfg, device)
    else:
        loaded = model
        loaded.model.to(device).eval()
    class_names, class_ids = _class_names(loaded, cfg, opts.classes, opts.class_names)
    return Resolved(cfg, device, loaded, class_names, class_ids, _model_input(opts, cfg, loaded))


def prepare(opts: RunOptions, model: LoadedModel | None = None, photographs: GivenPhotographs | None = None) -> Setup:
    """Resolve config, model, data and engines; every problem surfaces here as one XAIError line. `model` and
    `photographs` (xai.explain) stand for opts.model_path and opts.images when given."""
    r = resolve(opts, model)
    cfg, loaded, class_names, class_ids = r.cfg, r.loaded, r.class_names, r.class_ids
    found = None
    dataset: SegmentationDataset | PhotographDataset
    if opts.images or photographs is not None:
        dataset, indices, found = _photographs(opts, r.model_input, photographs)
    else:
        dataset, indices = _dataset(opts, cfg, r.model_input)
    norm = (dataset.mean, dataset.std)
    engines = {m: build_engine(m, loaded.model, method_options(m, opts, cfg, norm), class_names) for m in opts.methods}
    for engine in engines.values():
        engine.check_size(dataset.img_size[1], dataset.img_size[0])
        engine._contrast_class(len(class_names), class_ids)  # an explained class as CONTRAST: refused now
    described = [(m, get_method(m).label, get_method(m).folder, get_method(m).family) for m in opts.methods]
    kinds = output_kinds(described, opts.comparison, ground_truth=found is None)
    layout = Layout(Path(opts.output_dir), tuple(class_names), tuple(class_ids), tuple(kinds))
    evaluation = _evaluation(opts, cfg, norm, loaded.model, engines, class_ids, class_names) if opts.evaluate else None
    _note_unused_options(opts, list(evaluation.variants) if evaluation else [])
    run = RunDescription(
        opts, cfg, loaded, r.device, dataset, r.model_input, [class_names[c] for c in class_ids], found
    )
    colors = _colors(cfg, class_names)
    return Setup(
        opts=opts,
        cfg=cfg,
        loaded=loaded,
        device=r.device,
        dataset=dataset,
        indices=indices,
        class_names=class_names,
        class_ids=class_ids,
        colors=colors,
        engines=engines,
        layout=layout,
        run_info=run.info(engines, kinds, colors, class_names, evaluation.description if evaluation else None),
        run_key=run.key(engines, evaluation.key if evaluation else None),
        notes=list(loaded.notes or []),
        evaluator=evaluation.evaluator if evaluation else None,
        photographs=found,
    )


def _check_pairs(pairs: tuple[tuple[str, str], ...], labels: list[str]) -> None:
    for a, b in pairs:
        if a not in labels or b not in labels:
            raise XAIError(
                f"{option('pairs')} wants A@B with two different evaluated variants, got '{a}@{b}'; "
                f"the variants: {', '.join(labels)}"
            )


def _evaluated_contrast(contrast: Any, class_names: list[str]) -> int | str | None:
    """The score the evaluation measures (EvaluationSettings.contrast): the run's --contrast as an output id, or
    "auto", or None (each class's own score)."""
    if contrast is None or str(contrast) == "auto":
        return None if contrast is None else "auto"
    return resolve_class(contrast, class_names, len(class_names), option("contrast"))


@dataclass
class Evaluation:
    """The evaluator of --evaluate with its variants, its description (manifest) and what its numbers
    depend on (resume key)."""

    evaluator: Any  # xai.evaluation.evaluate.Evaluator
    variants: list[str]  # the method of each evaluated variant
    description: dict[str, Any]
    key: dict[str, Any]


def _evaluation(
    opts: RunOptions,
    cfg: Config,
    norm: tuple[Any, Any],
    model: torch.nn.Module,
    engines: dict[str, Explainer],
    class_ids: list[int],
    class_names: list[str],
) -> Evaluation:
    """The run's methods and --variants, each an engine built once, and the evaluator's settings: the run's
    evaluation options (EvaluationOptions) and what follows from the run."""
    from ..evaluation.evaluate import REFERENCES, Evaluator
    from ..evaluation.settings import EvaluationOptions, EvaluationSettings
    from ..evaluation.variants import Variant, parse_variants

    variants = [Variant(label=m, method=m, overrides=()) for m in opts.methods]
    for v in parse_variants(list(opts.variants)):
        if v.label not in {x.label for x in variants}:
            variants.append(v)
    _check_pairs(opts.pair_list, [v.label for v in variants] + list(REFERENCES))
    built = dict(engines)
    for v in variants:
        if v.label not in built:
            options = v.options(method_options(v.method, opts, cfg, norm))
            built[v.label] = build_engine(v.method, model, options, class_names)
            if opts.images:
                check_images_region(built[v.label].options.region, f" of {option('variants')} {v.label}")
    unit = sum(norm[1]) / len(norm[1])  # the noise radii are declared on [0, 1] images: in normalised units
    batching = opts.batching
    precision = precision_choice(opts.eval_precision, model_device(model))
    settings = EvaluationSettings(
        **{name: getattr(opts, name) for name in EvaluationOptions.names()} | {"eval_precision": precision["ran"]},
        batch_size=batching.batch_size,
        compile=batching.compile,
        cudnn_benchmark=batching.cudnn_benchmark,
        map_dtype=opts.map_dtype,
        seed=opts.seed,
        road_noise=0.01 / unit,
        stability_radius=0.02 / unit,
        pixel_mean=tuple(float(v) for v in norm[0]),
        pixel_std=tuple(float(v) for v in norm[1]),
        instances=opts.region == "instances",
        contrast=_evaluated_contrast(opts.method_options.get("contrast"), class_names),
    )
    evaluator = Evaluator(model, built, variants, class_ids, class_names, region_of(opts, class_names), settings)
    description = {
        "settings": settings.describe(),
        "references": {name: r.description for name, r in REFERENCES.items()},
        "precision": precision,
        "variants": {v.label: {"method": v.method, "options": built[v.label].options.describe()} for v in variants},
    }
    key = {
        "settings": settings.result_key(),
        "variants": {v.label: {"method": v.method, "options": built[v.label].options.result_key()} for v in variants},
    }
    return Evaluation(
        evaluator, [v.method for v in variants], json.loads(json.dumps(description)), json.loads(json.dumps(key))
    )
