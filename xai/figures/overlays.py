"""Picture panels as arrays: class colours, TP/FP/FN and heatmap overlays, resizing that keeps thin roots.

Inputs are on the original photograph: rgb H×W×3 uint8, class ids H×W, maps H×W float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from matplotlib import colormaps

from ..labels import IGNORE  # ignore-labelled pixels: drawn grey and never an error

TP_COLOR = (0, 200, 0)
FP_COLOR = (220, 0, 0)
FN_COLOR = (0, 80, 255)
DEFAULT_CMAP = "turbo"
UNKNOWN_CLASS_COLOR = (128, 128, 128)  # ids outside the palette (e.g. IGNORE, the ignore label)
ABSENT_TEXT = "class absent from ground truth and prediction"
NO_GT_TEXT = "no ground truth for this image"
NO_MAP_TEXT = "no explanation"
ERRORS = ((TP_COLOR, "TP (correct)", "tp"), (FP_COLOR, "FP (false alarm)", "fp"), (FN_COLOR, "FN (missed)", "fn"))

DIM = 0.75  # brightness kept by pixels that are neither TP, FP nor FN in an error overlay

# ---- arrays ------------------------------------------------------------------------------------------


def as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"rgb must be a non-empty HxWx3 uint8 image, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[..., :3])


def as_ids(ids: np.ndarray, hw: tuple[int, ...] | None, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be an HxW array of integer class ids, got {ids.dtype} {ids.shape}")
    if hw is not None and ids.shape != tuple(hw):
        raise ValueError(f"{name} has shape {ids.shape} but the image is {tuple(hw)}")
    return ids


def check_cam(cam: np.ndarray, hw: tuple[int, ...], name: str = "cam") -> np.ndarray:
    cam = np.asarray(cam)
    if cam.shape != tuple(hw) or not (np.issubdtype(cam.dtype, np.integer) or np.issubdtype(cam.dtype, np.floating)):
        raise ValueError(f"{name} must be a real HxW map of the image's size {tuple(hw)}, got {cam.dtype} {cam.shape}")
    cam = cam.astype(np.float32, copy=False)
    if not np.isfinite(cam).all():
        bad = "NaN" if np.isnan(cam).any() else "infinite values"
        raise ValueError(f"{name} contains {bad}; explanations must be finite values in [0, 1]")
    return cam


def paint(
    rgb: np.ndarray, layers: Sequence[tuple[np.ndarray, Sequence[int]]], alpha: float, dim: float = DIM
) -> np.ndarray:
    """rgb dimmed to `dim`, each (mask, colour) blended over it with weight alpha (later layers win)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = cv2.convertScaleAbs(rgb, alpha=dim)
    for mask, colour in layers:
        blend = cv2.addWeighted(rgb, 1.0 - alpha, np.full_like(rgb, [int(v) for v in colour]), alpha, 0.0)
        out = cv2.copyTo(blend, mask.view(np.uint8), out)
    return out


def error_layers(gt: np.ndarray, pred: np.ndarray, c: int) -> list[tuple[np.ndarray, Sequence[int]]]:
    ignored = gt == IGNORE
    g, p = gt == c, (pred == c) & ~ignored
    layers: list[tuple[np.ndarray, Sequence[int]]] = [(g & p, TP_COLOR), (p & ~g, FP_COLOR), (g & ~p, FN_COLOR)]
    return [(ignored, UNKNOWN_CLASS_COLOR), *layers] if ignored.any() else layers


def error_overlay(
    rgb: np.ndarray, gt: np.ndarray, pred: np.ndarray, class_idx: int, alpha: float = 0.6, dim: float = DIM
) -> np.ndarray:
    """HxWx3 uint8: TP green, FP red, FN blue blended (weight `alpha`) over the image; other pixels
    keep the image dimmed to `dim` of its brightness so the colours stand out."""
    rgb = as_rgb(rgb)
    if gt is None:
        raise ValueError("error_overlay needs a ground truth (gt is None)")
    gt, pred = as_ids(gt, rgb.shape[:2], "gt"), as_ids(pred, rgb.shape[:2], "pred")
    return paint(rgb, error_layers(gt, pred, class_idx), alpha, dim)


def colorize_classes(ids: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """HxWx3 uint8 colour mask: class i gets colors[i]; ids outside the palette are grey."""
    ids = as_ids(ids, None, "ids")
    palette = np.asarray([[int(v) for v in c] for c in colors], np.uint8).reshape(-1, 3)
    lut = np.array([*palette, UNKNOWN_CLASS_COLOR], np.uint8)
    return lut[np.where((ids >= 0) & (ids < len(palette)), ids, len(palette))]


def class_legend(
    gt: np.ndarray | None, pred: np.ndarray, class_names: Sequence[str], colors: Sequence[Sequence[int]]
) -> list[tuple[Sequence[int], str]]:
    """(colour, name) of every class in the prediction or the ground truth (None: the prediction alone),
    by id; ids outside the palette, such as the ignore label, have no row."""
    present = set(np.unique(pred).tolist()) | (set(np.unique(gt).tolist()) if gt is not None else set())
    return [(colors[i], class_names[i]) for i in sorted(present) if 0 <= i < len(class_names)]


def heatmap_overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """HxWx3 uint8: the colour-mapped cam (vmin 0, vmax 1) alpha-blended over the image."""
    rgb = as_rgb(rgb)
    colour = colormaps[cmap](np.clip(check_cam(cam, rgb.shape[:2]), 0, 1), bytes=True)
    return cv2.addWeighted(rgb, 1.0 - alpha, cv2.cvtColor(colour, cv2.COLOR_RGBA2RGB), alpha, 0.0)


def fit(arr: np.ndarray, size: tuple[int, int], kind: str = "image") -> np.ndarray:
    """arr resized to size (width, height). Shrinking: area averaging, but any-pooling for masks so
    that thin roots survive as at least one pixel. Enlarging: nearest for masks, class colours and
    3x or more, bilinear otherwise."""
    h, w = arr.shape[:2]
    if kind == "mask":
        if size[0] * size[1] <= w * h:
            return cv2.resize(arr.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        return cv2.resize(arr.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if (w, h) == size:
        return arr
    arr = arr.astype(np.float32) if arr.dtype != np.uint8 else arr
    if size[0] * size[1] <= w * h:
        return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    blocky = kind == "labels" or min(size[0] / w, size[1] / h) >= 3.0
    return cv2.resize(arr, size, interpolation=cv2.INTER_NEAREST if blocky else cv2.INTER_LINEAR)


def fit_layers(layers: Sequence[tuple[np.ndarray, Any]], size: tuple[int, int]) -> list[tuple[np.ndarray, Any]]:
    """(mask, colour) layers any-pooled to size in one resize."""
    masks = fit(np.dstack([m for m, _ in layers]), size, "mask").reshape(size[1], size[0], -1)
    return [(masks[..., i], colour) for i, (_, colour) in enumerate(layers)]


def visible(colour: Sequence[int]) -> tuple[float, ...]:
    """The class colour for a contour on a photograph; white when too dark to see."""
    rgb = tuple(float(v) / 255 for v in colour)
    return rgb if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] >= 0.25 else (1.0, 1.0, 1.0)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def class_index(cls: int | str, class_names: Sequence[str]) -> int:
    idx = int(cls) if isinstance(cls, (int, np.integer)) else list(class_names).index(cls) if cls in class_names else -1
    if not 0 <= idx < len(class_names):
        raise ValueError(f"unknown class {cls!r}; classes 0..{len(class_names) - 1}: {', '.join(class_names)}")
    return idx
