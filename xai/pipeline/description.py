"""A run described twice from what it resolved: for the manifest (everything that ran) and for each
sample's resume key (what its outputs depend on)."""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass
from typing import Any

import torch

from .. import __version__
from ..checkpoint import LoadedModel
from ..config import Config
from ..data import Preprocessing, SegmentationDataset
from ..methods import Explainer, get_method
from ..photographs import PhotographDataset, Photographs
from ..precision import numerics
from .options import RunOptions

__all__ = ["ModelInput", "RunDescription"]


@dataclass(frozen=True)
class ModelInput:
    """What the model's input is made of, as it ran: its size (and which source asked for it), the
    normalisation and the preprocessing (the checkpoint's where it stores them, else the config's)."""

    img_size: tuple[int, int]
    size_from: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocessing: Preprocessing

    def describe(self) -> dict[str, Any]:
        return {
            "img_size": list(self.img_size),
            "img_size_from": self.size_from,
            "mean": list(self.mean),
            "std": list(self.std),
            "preprocessing": dataclasses.asdict(self.preprocessing),
        }


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


@dataclass
class RunDescription:
    """What a run resolved, described twice: for the manifest (everything that ran) and for the resume key
    (what a sample's outputs depend on). With --images (photographs) there is no split and no data root."""

    opts: RunOptions
    cfg: Config
    loaded: LoadedModel
    device: torch.device
    dataset: SegmentationDataset | PhotographDataset
    model_input: ModelInput
    explained: list[str]  # the names of the explained classes
    photographs: Photographs | None = None  # what --images resolved to

    @property
    def data_root(self) -> str | None:
        return None if self.dataset.root is None else str(self.dataset.root)

    def key(self, engines: dict[str, Explainer], evaluation: dict[str, Any] | None) -> dict[str, Any]:
        """The declared settings that change a sample's outputs (RunOptions.result_key), with the values
        the run resolved in place of those it resolved (classes, img_size, data root)."""
        key = {
            **self.opts.result_key(),
            "checkpoint": self.loaded.sha256,
            "classes": self.explained,
            "img_size": list(self.dataset.img_size),
            "engines": {m: e.options.result_key() for m, e in engines.items()},
            "evaluation": evaluation,
            "data_root": self.data_root,
            "preprocessing": dataclasses.asdict(self.dataset.preprocessing),
            "ignore_index": self.cfg.ignore_index,
        }
        return json.loads(json.dumps(key))

    def info(
        self,
        engines: dict[str, Explainer],
        kinds: list[Any],
        colors: list[tuple[int, int, int]],
        class_names: list[str],
        evaluation: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The manifest's description of the run: its options as given, and what ran (the input the model
        saw, the checkpoint, the device and numerics, every engine's options, the evaluation)."""
        loaded = self.loaded
        info = {
            "command": list(self.opts.command),
            "options": self.opts.describe(),
            "versions": _versions(),
            "config": self.cfg.to_dict(),
            "checkpoint": {
                "path": str(self.opts.model_path),
                "sha256": loaded.sha256,
                "kind": loaded.kind,
                "arch": loaded.arch,
                "encoder": loaded.encoder,
            },
            "device": str(self.device),
            "numerics": numerics(
                self.device,
                {m: e.options.precision for m, e in engines.items() if hasattr(e.options, "precision")},
                (evaluation or {}).get("precision"),
            ),
            "input": self.model_input.describe(),
            "data_root": self.data_root,
            "preprocessing": dataclasses.asdict(self.dataset.preprocessing),
            "split": None if self.photographs else self.opts.split,
            **({"images": self.photographs.describe()} if self.photographs else {}),
            "region": self.opts.region,
            "save_raw": self.opts.save_raw,
            "map_dtype": self.opts.map_dtype,
            "classes": self.explained,
            "class_names": class_names,
            "colors": [list(c) for c in colors],
            "methods": {m: {"label": get_method(m).label, "folder": get_method(m).folder} for m in self.opts.methods},
            "outputs": [k.describe() for k in kinds],
            "engines": {m: e.options.describe() for m, e in engines.items()},
            "evaluation": evaluation,
        }
        return json.loads(json.dumps(info))
