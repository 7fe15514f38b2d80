"""The TP/FP/FN figure of one class: input | ground truth | prediction | errors, with counts, IoU and Dice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..metrics import error_counts, iou_dice
from .overlays import (
    ABSENT_TEXT,
    ERRORS,
    IGNORE,
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
    cname = class_names[c]
    present = set(np.unique(pred).tolist()) | (set(np.unique(gt).tolist()) if gt is not None else set())
    legends = {2: [(colors[i], class_names[i]) for i in sorted(present) if 0 <= i < len(class_names)]}
    if gt is not None:
        counts = error_counts(gt, pred, c)
        iou, dice = iou_dice(counts)
        layers = error_layers(gt, pred, c)
        ov_title = f"errors for '{cname}'\nIoU {fmt(iou)} · Dice {fmt(dice)}"
        legends[3] = [(colour, f"{name}: {counts[key]:,} px") for colour, name, key in ERRORS]
        ignored = int(np.count_nonzero(gt == IGNORE))
        if ignored:
            legends[3].append((UNKNOWN_CLASS_COLOR, f"ignored (no label): {ignored:,} px"))
    else:
        iou, layers = None, [(pred == c, colors[c])]
        ov_title = f"predicted '{cname}'\n(no ground truth)"
    aspect = hw[1] / hw[0]
    labels = {i: [t for _, t in items] for i, items in legends.items() if items}
    # text bands: two title lines, a legend of three rows and their pads
    _, cols, ph_in = grid_shape(4, aspect, 0.4, (2 * LINE_H * 10 + 14 + 5.2 * 8.5) / 72)
    col_pt = 72 * max(ph_in * aspect, MIN_COL)
    ncol = {3: 1}
    if 2 in labels:  # the class legend in as many columns as fit under its panel (3 under a panel 3.2 in wide)
        fitting = [n for n in (3, 2) if (n == 2 or col_pt >= 3.2 * 72) and legend_size(labels[2], 8.5, n)[0] <= col_pt]
        ncol[2] = fitting[0] if fitting else 1
    with MPL_LOCK:
        lay = page_layout(
            dpi,
            aspect,
            cols,
            ph_in,
            ["input image", "ground truth", "prediction", ov_title],
            10,
            title if title is not None else f"Segmentation errors for class '{cname}'",
            {i: legend_size(t, 8.5, ncol[i]) for i, t in labels.items()},
        )
        page = Page(lay.W, lay.H, dpi, path)
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
        small = fit_layers(layers, size)
        page.paste(b_ov, paint(show, small, alpha))
        if gt is None:
            page.outline(small[0][0], [b_ov], visible(colors[c]), 0.9)
        elif iou is None:
            page.notice(b_ov, ABSENT_TEXT, room=lay.col_w[3])
        page.titles(lay)
        for i in labels:
            x, y, w, h = lay.boxes[i]
            page.legend(legends[i], x + w / 2, y + h + page.px(3), 8.5, ncol[i], edge=i == 2)
        return page.save(path)
