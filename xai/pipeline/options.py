"""What a run is asked to do, from the command line (xai.cli) or from Python."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class RunOptions:
    """Every option of a run. `methods` are registry names (xai.methods); engine options that a
    method's constructor does not take are ignored for it (Score-CAM's batch_size for Grad-CAM)."""

    model_path: str
    methods: tuple[str, ...] = ("scorecam",)
    output_dir: str = "scorecam_visualizations"
    num_samples: int = 5
    split: str = "test"
    all: bool = False
    batch_size: int = 32
    max_activation_maps: int | None = None
    encoder: str | None = None
    arch: str | None = None
    img_size: tuple[int, int] | None = None
    config: str | None = None
    data_root: str | None = None
    classes: Sequence[str] | None = None
    target_layer: str | None = None
    device: str | None = None
    precision: str = "auto"
    region: str = "pred"
    score: str = "prob"
    baseline: str = "zero"
    weights: str = "centred"
    channel_selection: str = "variance"
    save_raw: bool = False
    resume: bool = False
    seed: int = 0
    trust_checkpoint: bool = False
    workers: int = 2
    progress: bool = True
    evaluate: bool = False
    variants: tuple[str, ...] = ()  # xai.evaluation.variants specs, evaluated beside `methods`
    eval_steps: int = 50
    road: bool = True  # ROAD in --evaluate (its imputation is the costliest part on a CPU)
    sanity_samples: int = 2
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    @property
    def comparison(self) -> bool:
        """A comparison figure per sample whenever more than one method runs."""
        return len(self.methods) > 1
