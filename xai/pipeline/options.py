"""What a run is asked to do, declared once (xai.options): from each field follow its command-line flag
(xai.cli), its check, the manifest (`describe()`) and the resume key (`result_key()`: fields with
result=True, those that change a sample's outputs).

Adding a run setting is one field here (docs/extending.md, 'Adding a run option'):

    keep_going: bool = option(False, "explain the samples after a failed one", result=False, section=RUN)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..batching import BatchOptions
from ..data import DEFAULT_MAX_PIXELS, MAX_INPUT_SIDE, SPLITS
from ..errors import XAIError
from ..errors import option as flag
from ..evaluation.settings import EvaluationOptions
from ..mapfile import MAP_DTYPES
from ..methods.base import ExplainerOptions
from ..options import REQUIRED, option
from ..targets import TRUTH_REGIONS

__all__ = ["MODEL_AND_DATA", "RUN", "SAMPLES", "SPLIT_SAMPLES", "RunOptions", "check_images_region"]

SAMPLES, MODEL_AND_DATA, RUN = "model and samples", "model and data", "run"  # --help sections
SPLIT_SAMPLES = 5  # the samples of a split explained when neither --num_samples nor --all is given


def check_images_region(region: str, where: str = "") -> None:
    """Refuse a region that needs a ground truth for photographs without masks (--images), in one line."""
    if region in TRUTH_REGIONS:
        raise XAIError(
            f"{flag('region')} {region}{where} needs a mask, and the photographs of {flag('images')} have none: "
            f"use {flag('region')} pred (the default), all or instances"
        )


def _profiles() -> tuple[str, ...]:
    from ..methods import methods

    return tuple(sorted({"default"} | {name for info in methods().values() for name in info.options.PROFILES}))


@dataclass(frozen=True, kw_only=True)
class RunOptions(EvaluationOptions):
    """Every option of a run. `methods` are registry names (xai.methods). `method_options` sets the
    methods' own options by name (xai.options: batch_size, weights, target_layer, region, ...), for every
    selected method that declares the name; a method's other options keep the values of its `profile`
    ("default", or a named profile such as "paper"), and `target_layer` the config's."""

    model_path: str = option(
        REQUIRED,
        "checkpoint (.pth or .safetensors): whole pickled model, state_dict or the project's format",
        section=SAMPLES,
        exclusive="source",
        result=False,  # the resume key holds the checkpoint's sha256 instead
    )
    methods: tuple[str, ...] = option(("scorecam",), "methods to run (registry names)", cli=False)
    num_samples: int | None = option(
        None,
        f"number of samples to visualise, the first N: of the split (default: {SPLIT_SAMPLES}), or of --images "
        "(every photograph unless given)",
        minimum=1,
        section=SAMPLES,
        exclusive="count",
        result=False,
    )
    all: bool = option(False, "explain the whole split", section=SAMPLES, exclusive="count", result=False)
    split: str = option("test", "dataset split", choices=SPLITS, section=SAMPLES, exclusive="selection")
    images: tuple[str, ...] = option(
        (),
        "photographs without masks to explain instead of a split: files, folders (their photographs, not "
        "their subfolders) or quoted globs ('photos/**/*.jpg'); every one, in the order given, unless "
        "--num_samples; no --data_root or split file is read; the region must be pred, all or instances; "
        "instead of TP/FP/FN the figures and summaries show the prediction",
        metavar="PATH",
        section=SAMPLES,
        exclusive="selection",
        result=False,  # each sample's record keeps its photograph's path, which --resume compares
    )
    output_dir: str = option("scorecam_visualizations", "output directory", section=SAMPLES, result=False)
    encoder: str | None = option(
        None,
        "encoder architecture (default: the checkpoint's, else the config's, se_resnext50_32x4d)",
        section=MODEL_AND_DATA,
    )
    img_size: tuple[int, int] | None = option(
        None,
        f"image size, at most {MAX_INPUT_SIDE} a side (default: the checkpoint's, else the config's, 512 256)",
        minimum=1,
        maximum=MAX_INPUT_SIDE,
        metavar=("WIDTH", "HEIGHT"),
        section=MODEL_AND_DATA,
    )
    config: str | None = option(
        None, "a packaged config (phenocyte, demo) or a YAML file (default: phenocyte)", section=MODEL_AND_DATA
    )
    data_root: str | None = option(None, "dataset root (default: the config's data_root)", section=MODEL_AND_DATA)
    arch: str | None = option(
        None, "architecture for plain state_dicts (default: the config's, FPN)", section=MODEL_AND_DATA
    )
    classes: tuple[str, ...] | None = option(
        None, "explain only these classes, by name", metavar="CLASS", section=MODEL_AND_DATA
    )
    class_names: tuple[str, ...] | None = option(
        None,
        "the name of each output id, in id order (over the checkpoint's and the config's; docs/data.md, 'Class names')",
        metavar="NAME",
        section=MODEL_AND_DATA,
    )
    device: str | None = option(
        None, "cpu, cuda or cuda:N (default: cuda when available)", section=MODEL_AND_DATA, result=False
    )
    method_options: Mapping[str, Any] = option(
        None, "the methods' own options by name (xai.options)", factory=dict, cli=False, result=False
    )
    profile: str = option(
        "default",
        "the methods' defaults: default (chosen by the evidence in docs/evidence.md) or paper (Score-CAM as "
        "published: raw weights, zero baseline)",
        choices=_profiles,
        section=RUN,
    )
    save_raw: bool = option(  # a sample with raw maps serves a run without: checked apart (explain stage)
        False, "also store un-normalised maps and weights in the npz", section=RUN, result=False
    )
    map_dtype: str = option(
        MAP_DTYPES[0],
        "how raw_maps/*.npz stores the normalised maps: float16, uint8 (codes k of k/255) or float32; the run's "
        "maps are rounded to it before the figures, summaries and evaluation, so every number is the stored map's",
        choices=MAP_DTYPES,
        section=RUN,
    )
    resume: bool = option(False, "keep samples whose outputs are complete", section=RUN, result=False)
    seed: int = option(
        0,
        "seed of every method that draws random numbers and of the evaluation's random parts "
        "(reference map, ROAD noise, sanity check)",
        section=RUN,
    )
    trust_checkpoint: bool = option(
        False,
        "allow full unpickling of the checkpoint (runs code from the file: only for files you trust)",
        section=RUN,
        result=False,
    )
    workers: int = option(
        2, "processes writing figures and maps files (0: in this process)", minimum=0, section=RUN, result=False
    )
    samples_per_call: int = option(
        1,
        "samples each method explains in one call: the sweeps (Score-CAM's masked images, occlusion, "
        "RISE, Ablation-CAM) then fill --batch_size with those of all of them, for the large batches a GPU "
        "needs; the maps equal those of one sample at a time",
        minimum=1,
        section=RUN,
        result=False,
    )
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS,
        "skip photographs with more pixels (read from the file's header; memory grows with the photograph)",
        minimum=1,
        section=RUN,
        result=False,
    )
    progress: bool = option(True, "no progress bar", flag="no_progress", section=RUN, result=False)
    command: tuple[str, ...] = option(
        None, "the command line", factory=lambda: tuple(sys.argv), cli=False, result=False
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.images:
            if self.data_root is not None:
                raise XAIError(
                    f"{flag('images')} explains photographs without a dataset: leave out {flag('data_root')} "
                    f"(or explain the dataset's split without {flag('images')})"
                )
            check_images_region(self.region)

    def describe(self) -> dict[str, Any]:
        """Every option's value (the manifest); a split's num_samples not given is the SPLIT_SAMPLES it means."""
        described = super().describe()
        if self.num_samples is None and not self.images:
            described["num_samples"] = SPLIT_SAMPLES
        return described

    def result_key(self) -> dict[str, Any]:
        """The settings that change a sample's outputs; the evaluation's only when it runs; no split with
        --images (a sample's record keeps its photograph's path instead)."""
        key = super().result_key()
        if not self.evaluate:
            for name in EvaluationOptions.names():
                key.pop(name, None)
        if self.images:
            key.pop("split", None)
        return key

    @property
    def sample_limit(self) -> int | None:
        """How many samples to explain from the first: --num_samples, else all of --images or with --all, else
        SPLIT_SAMPLES of the split (None: every one)."""
        if self.all:
            return None
        if self.num_samples is not None:
            return self.num_samples
        return None if self.images else SPLIT_SAMPLES

    @property
    def comparison(self) -> bool:
        """A comparison figure per sample whenever more than one method runs."""
        return len(self.methods) > 1

    @property
    def explainer(self) -> ExplainerOptions:
        """The options every method shares (the region) as the run sets them."""
        return ExplainerOptions(**ExplainerOptions.declared_in(self.method_options))

    @property
    def region(self) -> str:
        """The region every method explains (the methods' option, "pred" unless set)."""
        return self.explainer.region

    @property
    def batching(self) -> BatchOptions:
        """How batched forwards run (batch size, torch.compile, cuDNN search): the methods' settings, which the
        evaluation's forwards share."""
        return BatchOptions(**BatchOptions.declared_in(self.method_options))
