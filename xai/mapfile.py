"""raw_maps/sample{i}.npz: one sample's maps as the run used them, with what maps them back.

Every map is stored at the model's input resolution, exactly the array the figures, the summaries and
the evaluation used (in [0, 1] on the photograph's pixels, 0 on padding: xai.maps), together with the
letterbox geometry, so that `load_maps(path).on_photograph(method)` gives the maps on the photograph:

    <method>        C×H×W: the maps of the explained classes (zeros for the others), as map_dtype says
    map_dtype       "float16" (default), "uint8" (codes k of k/255) or "float32" (files of earlier
                    releases have no entry: float32)
    gt              h×w uint8 on the photograph (the mask as read; 255: ignore label)
    pred_input, gt_input   H×W uint8 at the input resolution (gt_input: 255 on padding)
    ground_truth    False, only in the file of a photograph without a mask (--images): gt and gt_input are
                    then all 255 (no label anywhere) and `load_maps` gives gt and gt_input None
    letterbox       8 integers: photograph h, w; resized h, w; padded (input) h, w; offset top, left

A run rounds its maps once, right after each engine's call, to what the file stores (`as_stored`:
float16 m.half().float(), uint8 round(255·m)/255, float32 m), so the figures, summary.csv, metrics.csv
and this file hold the same float32 values: `load_maps` reads them back bit for bit, as float32 in [0, 1]
for every map_dtype. The library's engines (`ScoreCAM(model)(x)`) return full float32; the rounding is
a property of the run's files only.

The prediction on the photograph is not stored (it is pred_input mapped back, nearest): `MapFile.pred`
computes it when asked; files of earlier releases that hold a "pred" array keep it.
    methods, classes, class_ids, image_name, region
    <method>_<name>  what a method returns beside its maps at the input resolution (superpixels,
                     confidence, entropy, ...), as the method returns it; with --save_raw also
                     <method>_raw (before min-max) and <method>_weights (a CAM's weights), float32 always:
                     their range is unbounded (float16 overflows at 65504)

This module does not import torch at import time: the figure workers import it to write the files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import Letterbox, Preprocessing
from .errors import XAIError, option
from .io import write_npz

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAP_DTYPES",
    "MapFile",
    "as_stored",
    "check_map_dtype",
    "decode_maps",
    "encode_maps",
    "load_maps",
    "write_maps",
]
MAP_DTYPES = ("float16", "uint8", "float32")  # how a maps file stores the normalised maps; the first is the default
_META = ("classes", "class_ids", "image_name", "region", "gt", "pred_input", "gt_input", "letterbox", "methods")


@dataclass
class MapFile:
    """One sample's maps file; gt and gt_input are None for a photograph without a mask."""

    maps: dict[str, np.ndarray]
    gt: np.ndarray | None
    pred_input: np.ndarray
    gt_input: np.ndarray | None
    letterbox: Letterbox
    class_names: list[str]
    class_ids: list[int]
    image_name: str
    region: str
    map_dtype: str = "float32"  # how write_maps stores `maps` (MAP_DTYPES); in memory they are float32
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    stored_pred: np.ndarray | None = None  # files of earlier releases

    @property
    def has_ground_truth(self) -> bool:
        """Whether the sample had a mask (False: a photograph explained without one, --images)."""
        return self.gt is not None

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


def check_map_dtype(map_dtype: str) -> str:
    """map_dtype, if it is one of MAP_DTYPES."""
    if map_dtype not in MAP_DTYPES:
        raise XAIError(f"unknown {option('map_dtype')} '{map_dtype}': choose one of {', '.join(MAP_DTYPES)}")
    return map_dtype


def encode_maps(maps: np.ndarray, map_dtype: str) -> np.ndarray:
    """What the file stores of maps m in [0, 1]: float16 m (nearest), uint8 codes k = round(255·m), or
    float32 m."""
    m = np.asarray(maps, dtype=np.float32)
    if check_map_dtype(map_dtype) == "uint8":
        return np.rint(np.clip(m, 0, 1) * np.float32(255)).astype(np.uint8)
    return m.astype(map_dtype)


def decode_maps(stored: np.ndarray, map_dtype: str) -> np.ndarray:
    """The float32 maps that stored arrays stand for: float16 and float32 exactly, uint8 codes k as k/255."""
    if check_map_dtype(map_dtype) == "uint8":
        return stored.astype(np.float32) / np.float32(255)
    return stored.astype(np.float32)


def as_stored(maps: torch.Tensor, map_dtype: str) -> torch.Tensor:
    """maps in [0, 1] rounded to what a maps file of map_dtype gives back, float32 on maps' device:
    decode(encode(m)) = m.half().float() (float16), round(255·m)/255 (uint8), m (float32). Idempotent, so
    the file written from the rounded maps reads back bit for bit. Rounded where the maps are, with the
    operations of encode_maps and decode_maps (round half to even, float32 arithmetic): no host transfer."""
    import torch

    m = maps.detach().float()
    if check_map_dtype(map_dtype) == "uint8":
        return torch.round(m.clamp(0, 1) * 255) / 255
    return m.half().float() if map_dtype == "float16" else m


def _unlabelled(hw: tuple[int, ...]) -> np.ndarray:
    """What the file stores for the gt of a photograph without a mask: no label anywhere (255)."""
    return np.full(hw, 255, dtype=np.uint8)


def write_maps(path: str | Path, file: MapFile) -> None:
    """Write the maps file (atomically); a photograph without a mask stores gt all 255 and ground_truth
    False."""
    gt = file.gt if file.gt is not None else _unlabelled(file.letterbox.orig_hw)
    gt_input = file.gt_input if file.gt_input is not None else _unlabelled(file.pred_input.shape)
    arrays: dict[str, Any] = {
        "methods": np.array(list(file.maps)),
        "classes": np.array(file.class_names),
        "class_ids": np.array(file.class_ids),
        "image_name": np.array(file.image_name),
        "region": np.array(file.region),
        "gt": gt.astype(np.uint8),
        "pred_input": file.pred_input.astype(np.uint8),
        "gt_input": gt_input.astype(np.uint8),
        **({} if file.has_ground_truth else {"ground_truth": np.array(False)}),
        "letterbox": file.letterbox.as_array(),
        "preprocessing": np.array(json.dumps(dataclasses.asdict(file.letterbox.preprocessing))),
        "map_dtype": np.array(file.map_dtype),
        **{m: encode_maps(a, file.map_dtype) for m, a in file.maps.items()},
        **file.extra,
    }
    write_npz(path, **arrays)


_OPTIONAL = ("pred", "map_dtype", "preprocessing", "ground_truth")  # entries that files of earlier releases may lack


def _letterbox(arrays: dict[str, Any]) -> Letterbox:
    """The geometry with the preprocessing that made it (files of earlier releases: the placement that
    their offset shows, the other settings unknown and left at their defaults)."""
    box = Letterbox.from_array(arrays["letterbox"])
    if "preprocessing" in arrays:
        pre = Preprocessing(**json.loads(str(arrays["preprocessing"])))
    else:
        pre = Preprocessing(pad_position="center" if box.offset != (0, 0) else "top_left")
    return dataclasses.replace(box, preprocessing=pre)


def load_maps(path: str | Path) -> MapFile:
    """The maps file of a sample (raw_maps/sample{i}.npz); gt and gt_input None where it says the sample had
    no mask."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise XAIError(f"cannot read the maps file {path}: {exc}") from None
    missing = [k for k in _META if k not in arrays]
    if missing:
        raise XAIError(f"{path} is not a maps file of this toolkit (no {', '.join(missing)})")
    methods = [str(m) for m in arrays["methods"]]
    map_dtype = str(arrays["map_dtype"]) if "map_dtype" in arrays else "float32"  # earlier releases: float32
    if map_dtype not in MAP_DTYPES:
        raise XAIError(f"{path} stores its maps as '{map_dtype}', which this release does not read")
    wrong = [m for m in methods if arrays[m].dtype != np.dtype(map_dtype)]
    if wrong:
        raise XAIError(f"{path}: the maps of {', '.join(wrong)} are not {map_dtype} as the file declares")
    extra_keys = [k for k in arrays if k not in _META and k not in methods and k not in _OPTIONAL]
    truth = bool(arrays["ground_truth"]) if "ground_truth" in arrays else True
    return MapFile(
        maps={m: decode_maps(arrays[m], map_dtype) for m in methods},
        gt=arrays["gt"] if truth else None,
        pred_input=arrays["pred_input"],
        gt_input=arrays["gt_input"] if truth else None,
        letterbox=_letterbox(arrays),
        class_names=[str(c) for c in arrays["classes"]],
        class_ids=[int(c) for c in arrays["class_ids"]],
        image_name=str(arrays["image_name"]),
        region=str(arrays["region"]),
        map_dtype=map_dtype,
        extra={k: arrays[k] for k in extra_keys},
        stored_pred=arrays.get("pred"),
    )
