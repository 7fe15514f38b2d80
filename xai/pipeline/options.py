"""What a run is asked to do, from the command line (xai.cli) or from Python."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunOptions:
    """Every option of a run. `methods` are registry names (xai.methods). `method_options` sets the
    methods' own options by name (xai.options: batch_size, weights, target_layer, region, ...), for every
    selected method that declares the name; a method's other options keep the values of its `profile`
    ("default", or a named profile such as "paper"), and `target_layer` the config's."""

    model_path: str
    methods: tuple[str, ...] = ("scorecam",)
    output_dir: str = "scorecam_visualizations"
    num_samples: int = 5
    split: str = "test"
    all: bool = False
    encoder: str | None = None
    arch: str | None = None
    img_size: tuple[int, int] | None = None
    config: str | None = None
    data_root: str | None = None
    classes: Sequence[str] | None = None
    class_names: Sequence[str] | None = None  # the name of each output id, over the checkpoint's and config's
    device: str | None = None
    method_options: Mapping[str, Any] = field(default_factory=dict)
    profile: str = "default"
    save_raw: bool = False
    map_dtype: str = "float16"  # how raw_maps/*.npz stores the maps (xai.mapfile); the run's maps are rounded to it
    resume: bool = False
    seed: int = 0  # seeds every method that draws random numbers, and the evaluation
    trust_checkpoint: bool = False
    workers: int = 2
    samples_per_call: int = 1  # samples every method explains in one call (the sweeps' batches span them)
    max_pixels: int = 400_000_000  # photographs larger than this are skipped (xai.data.DEFAULT_MAX_PIXELS)
    progress: bool = True
    evaluate: bool = False
    variants: tuple[str, ...] = ()  # xai.evaluation.variants specs, evaluated beside `methods`
    pairs: tuple[str, ...] = ()  # "A@B": paired differences A − B in the report (default: first vs each other)
    eval_steps: int = 50
    road: bool = True  # ROAD in --evaluate (its imputation is the costliest part on a CPU)
    sanity_samples: int = 2
    stability_samples: int = 3  # noisy copies per sample for max-sensitivity in --evaluate (0: none)
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    @property
    def comparison(self) -> bool:
        """A comparison figure per sample whenever more than one method runs."""
        return len(self.methods) > 1

    @property
    def region(self) -> str:
        """The region every method explains (the methods' option, "pred" unless set)."""
        return str(self.method_options.get("region") or "pred")

    @property
    def batch_size(self) -> int | None:
        """Images per forward pass of the evaluation: the methods' batch_size when set, else automatic (None)."""
        size = self.method_options.get("batch_size")
        return None if size is None else int(size)

    @property
    def compile(self) -> bool:
        """torch.compile for the evaluation's batched forwards too, when the methods' compile is set."""
        return bool(self.method_options.get("compile", False))

    @property
    def cudnn_benchmark(self) -> bool:
        """cuDNN's algorithm search for the evaluation's batched forwards too, when the methods' is set."""
        return bool(self.method_options.get("cudnn_benchmark", False))
