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
    class_legend,
    colorize_classes,
    error_layers,
    fit,
    fit_layers,
    fmt,
    paint,
    visible,
)
from .page import DEFAULT_DPI, Page, PanelGrid, PanelLegend, legend_columns, save_panel_page

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
    grid = PanelGrid.fit(4, hw[1] / hw[0], title_lines=2)
    legends: dict[int, PanelLegend] = {}
    classes = class_legend(gt, pred, class_names, colors)
    if classes:
        legends[2] = PanelLegend(classes, legend_columns([t for _, t in classes], grid.col_pt), edge=True)
    if gt is not None:
        legends[3] = PanelLegend(overlay.legend)
    return save_panel_page(
        path,
        dpi,
        grid,
        ["input image", "ground truth", "prediction", overlay.title],
        title if title is not None else f"Segmentation errors for class '{class_names[c]}'",
        legends,
        lambda page, lay: _draw_panels(page, lay, rgb, gt, pred, colors, c, overlay, alpha),
    )


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
