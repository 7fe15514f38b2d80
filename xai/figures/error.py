"""The TP/FP/FN figure of one class: input | ground truth | prediction | errors, with counts, IoU and Dice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..labels import IGNORE
from ..metrics import error_counts, iou_dice
from .overlays import (
    ABSENT_TEXT,
    ERRORS,
    NO_GT_TEXT,
    UNKNOWN_CLASS_COLOR,
    as_ids,
    as_rgb,
    class_index,
    colorize_classes,
    error_layers,
    fit,
    fit_layers,
    fmt,
    paint,
    visible,
)
from .page import DEFAULT_DPI, LINE_H, MIN_COL, MPL_LOCK, Page, grid_shape, legend_size, page_layout

_Legend = list[tuple[Sequence[int], str]]  # (colour, text) rows


@dataclass
class _Overlay:
    """The last panel: its title, its (mask, colour) layers, the IoU (None without gt or when the class is
    in neither gt nor pred) and its legend (empty without gt)."""

    title: str
    layers: list[tuple[np.ndarray, Sequence[int]]]
    iou: float | None
    legend: _Legend


def save_error_figure(
    path: str | Path,
    rgb: np.ndarray,
    gt: np.ndarray | None,
    pred: np.ndarray,
    class_idx: int | str,
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    title: str | None = None,
    *,
    alpha: float = 0.8,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Input | ground truth | prediction | TP/FP/FN overlay of one class, with counts, IoU and Dice.

    Counts and scores are computed at full resolution; the pictures are resized for the page. If the
    class is in neither gt nor pred, the overlay panel says so. If gt is None the ground-truth panel
    says so and the last panel shows the predicted region of the class.
    """
    rgb = as_rgb(rgb)
    hw = rgb.shape[:2]
    gt, pred = None if gt is None else as_ids(gt, hw, "gt"), as_ids(pred, hw, "pred")
    c = class_index(class_idx, class_names)
    overlay = _overlay(gt, pred, c, class_names[c], colors[c])
    legends = {2: _class_legend(gt, pred, class_names, colors)}
    if gt is not None:
        legends[3] = overlay.legend
    aspect = hw[1] / hw[0]
    labels = {i: [t for _, t in items] for i, items in legends.items() if items}
    cols, ph_in, ncol = _grid(aspect, labels)
    with MPL_LOCK:
        lay = page_layout(
            dpi,
            aspect,
            cols,
            ph_in,
            ["input image", "ground truth", "prediction", overlay.title],
            10,
            title if title is not None else f"Segmentation errors for class '{class_names[c]}'",
            {i: legend_size(t, 8.5, ncol[i]) for i, t in labels.items()},
        )
        page = Page(lay.W, lay.H, dpi, path)
        _draw_panels(page, lay, rgb, gt, pred, colors, c, overlay, alpha)
        page.titles(lay)
        for i in labels:
            x, y, w, h = lay.boxes[i]
            page.legend(legends[i], x + w / 2, y + h + page.px(3), 8.5, ncol[i], edge=i == 2)
        return page.save(path)


def _overlay(gt: np.ndarray | None, pred: np.ndarray, c: int, cname: str, colour: Sequence[int]) -> _Overlay:
    """The TP/FP/FN of class c with their pixel counts (and the ignore-labelled pixels'), IoU and Dice;
    without gt, the predicted region of c."""
    if gt is None:
        return _Overlay(f"predicted '{cname}'\n(no ground truth)", [(pred == c, colour)], None, [])
    counts = error_counts(gt, pred, c)
    iou, dice = iou_dice(counts)
    legend: _Legend = [(rgb, f"{name}: {counts[key]:,} px") for rgb, name, key in ERRORS]
    ignored = int(np.count_nonzero(gt == IGNORE))
    if ignored:
        legend.append((UNKNOWN_CLASS_COLOR, f"ignored (no label): {ignored:,} px"))
    title = f"errors for '{cname}'\nIoU {fmt(iou)} · Dice {fmt(dice)}"
    return _Overlay(title, error_layers(gt, pred, c), iou, legend)


def _class_legend(
    gt: np.ndarray | None, pred: np.ndarray, class_names: Sequence[str], colors: Sequence[Sequence[int]]
) -> _Legend:
    """(colour, name) of every class in the prediction or the ground truth, by id (ids outside the
    palette, such as the ignore label, have no row)."""
    present = set(np.unique(pred).tolist()) | (set(np.unique(gt).tolist()) if gt is not None else set())
    return [(colors[i], class_names[i]) for i in sorted(present) if 0 <= i < len(class_names)]


def _grid(aspect: float, labels: dict[int, list[str]]) -> tuple[int, float, dict[int, int]]:
    """(columns, panel height in inches, legend columns per panel) of the four panels: the class legend
    in as many columns as fit under its panel (3 only under a panel 3.2 in wide), the counts in one."""
    # text bands: two title lines, a legend of three rows and their pads
    _, cols, ph_in = grid_shape(4, aspect, 0.4, (2 * LINE_H * 10 + 14 + 5.2 * 8.5) / 72)
    col_pt = 72 * max(ph_in * aspect, MIN_COL)
    ncol = {3: 1}
    if 2 in labels:
        fitting = [n for n in (3, 2) if (n == 2 or col_pt >= 3.2 * 72) and legend_size(labels[2], 8.5, n)[0] <= col_pt]
        ncol[2] = fitting[0] if fitting else 1
    return cols, ph_in, ncol


def _draw_panels(
    page: Page,
    lay: Any,
    rgb: np.ndarray,
    gt: np.ndarray | None,
    pred: np.ndarray,
    colors: Sequence[Sequence[int]],
    c: int,
    overlay: _Overlay,
    alpha: float,
) -> None:
    """The four pictures, with the notices of a missing ground truth or an absent class."""
    size = (lay.pw * page.k, lay.ph * page.k)
    b_in, b_gt, b_pr, b_ov = lay.boxes
    show = fit(rgb, size)
    page.paste(b_in, show)
    if gt is not None:
        page.paste(b_gt, fit(colorize_classes(gt, colors), size, "labels"))
    else:
        page.paste(b_gt, cv2.convertScaleAbs(show, alpha=0.35))
        page.notice(b_gt, NO_GT_TEXT, room=lay.col_w[1])
    page.paste(b_pr, fit(colorize_classes(pred, colors), size, "labels"))
    small = fit_layers(overlay.layers, size)
    page.paste(b_ov, paint(show, small, alpha))
    if gt is None:
        page.outline(small[0][0], [b_ov], visible(colors[c]), 0.9)
    elif overlay.iou is None:
        page.notice(b_ov, ABSENT_TEXT, room=lay.col_w[3])
