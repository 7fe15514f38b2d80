"""raw_maps/sample{i}.npz: one sample's maps as the engines made them, with what maps them back.

Every map is stored at the model's input resolution, exactly the array the figures, the summaries and
the evaluation used (in [0, 1] on the photograph's pixels, 0 on padding: xai.maps), together with the
letterbox geometry, so that `load_maps(path).on_photograph(method)` gives the maps on the photograph:

    <method>        C×H×W float32: the maps of the explained classes (zeros for the others)
    gt              h×w uint8 on the photograph (the mask as read; 255: ignore label)
    pred_input, gt_input   H×W uint8 at the input resolution (gt_input: 255 on padding)
    letterbox       8 integers: photograph h, w; resized h, w; padded (input) h, w; offset top, left

The prediction on the photograph is not stored (it is pred_input mapped back, nearest): `MapFile.pred`
computes it when asked; files of earlier releases that hold a "pred" array keep it.
    methods, classes, class_ids, image_name, region
    <method>_<name>  what a method returns beside its maps at the input resolution (superpixels,
                     confidence, entropy, ...); with --save_raw also <method>_raw (before min-max)
                     and <method>_weights (a CAM's weights)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Letterbox
from .errors import XAIError
from .io import write_npz

__all__ = ["MapFile", "load_maps", "write_maps"]
_META = ("classes", "class_ids", "image_name", "region", "gt", "pred_input", "gt_input", "letterbox", "methods")


@dataclass
class MapFile:
    maps: dict[str, np.ndarray]
    gt: np.ndarray
    pred_input: np.ndarray
    gt_input: np.ndarray
    letterbox: Letterbox
    class_names: list[str]
    class_ids: list[int]
    image_name: str
    region: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    stored_pred: np.ndarray | None = None  # files of earlier releases

    @property
    def pred(self) -> np.ndarray:
        """h×w uint8: the prediction on the photograph (pred_input mapped back through the letterbox)."""
        if self.stored_pred is not None:
            return self.stored_pred
        return self.letterbox.to_original(self.pred_input, nearest=True)

    def on_photograph(self, method: str) -> np.ndarray:
        """C×h×w float32: the method's maps cropped of padding and resized to the photograph (bilinear)."""
        if method not in self.maps:
            raise XAIError(f"no maps of '{method}' in this file; it holds {', '.join(self.maps)}")
        return np.stack([self.letterbox.to_original(m) for m in self.maps[method]]).astype(np.float32)


def write_maps(path: str | Path, file: MapFile) -> None:
    arrays: dict[str, Any] = {
        "methods": np.array(list(file.maps)),
        "classes": np.array(file.class_names),
        "class_ids": np.array(file.class_ids),
        "image_name": np.array(file.image_name),
        "region": np.array(file.region),
        "gt": file.gt.astype(np.uint8),
        "pred_input": file.pred_input.astype(np.uint8),
        "gt_input": file.gt_input.astype(np.uint8),
        "letterbox": file.letterbox.as_array(),
        **{m: a.astype(np.float32) for m, a in file.maps.items()},
        **file.extra,
    }
    write_npz(path, **arrays)


def load_maps(path: str | Path) -> MapFile:
    """The maps file of a sample (raw_maps/sample{i}.npz)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise XAIError(f"cannot read the maps file {path}: {exc}") from None
    missing = [k for k in _META if k not in arrays]
    if missing:
        raise XAIError(f"{path} is not a maps file of this toolkit (no {', '.join(missing)})")
    methods = [str(m) for m in arrays["methods"]]
    extra_keys = [k for k in arrays if k not in _META and k not in methods and k != "pred"]
    return MapFile(
        maps={m: arrays[m] for m in methods},
        gt=arrays["gt"],
        pred_input=arrays["pred_input"],
        gt_input=arrays["gt_input"],
        letterbox=Letterbox.from_array(arrays["letterbox"]),
        class_names=[str(c) for c in arrays["classes"]],
        class_ids=[int(c) for c in arrays["class_ids"]],
        image_name=str(arrays["image_name"]),
        region=str(arrays["region"]),
        extra={k: arrays[k] for k in extra_keys},
        stored_pred=arrays.get("pred"),
    )
