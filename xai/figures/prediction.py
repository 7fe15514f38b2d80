"""The prediction figure of one class on a photograph without a mask: input | prediction | the class's
predicted pixels outlined on the photograph, with their count and mean probability (the TP/FP/FN figure's
counterpart where there is no ground truth, in its style)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import mean_probability
from .overlays import as_ids, as_rgb, class_index, class_legend, colorize_classes, fit, fmt, paint, visible
from .page import DEFAULT_DPI, Page, PanelGrid, PanelLegend, legend_columns, save_panel_page

NOT_PREDICTED_TEXT = "class not predicted in this image"


def save_prediction_figure(
    path: str | Path,
    rgb: np.ndarray,
    pred: np.ndarray,
    class_idx: int | str,
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    confidence: np.ndarray | None = None,
    title: str | None = None,
    *,
    alpha: float = 0.6,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Input | prediction (every predicted class in its colour, with their legend) | the predicted pixels of
    one class painted and outlined on the photograph, with their count and mean probability.

    confidence: H×W, the probability of the predicted class at each pixel (None: the mean is not shown).
    Counts are computed on the arrays given (the photograph, or its display copy); the pictures are
    resized for the page. A class without predicted pixels gets a panel that says so.
    """
    rgb = as_rgb(rgb)
    hw = rgb.shape[:2]
    pred = as_ids(pred, hw, "pred")
    c = class_index(class_idx, class_names)
    region = pred == c
    legend = class_legend(None, pred, class_names, colors)
    grid = PanelGrid.fit(3, hw[1] / hw[0], title_lines=3)
    ncol = legend_columns([t for _, t in legend], grid.col_pt)
    return save_panel_page(
        path,
        dpi,
        grid,
        ["input image", "prediction", _region_title(class_names[c], pred, c, confidence)],
        title if title is not None else f"Prediction of class '{class_names[c]}' (no ground truth)",
        {1: PanelLegend(legend, ncol, edge=True)} if legend else {},
        lambda page, lay: _draw_panels(page, lay, rgb, pred, region, colors, c, alpha),
    )


def _region_title(cname: str, pred: np.ndarray, c: int, confidence: np.ndarray | None) -> str:
    """The last panel's title: the class, its predicted pixels and their mean probability."""
    pixels = int(np.count_nonzero(pred == c))
    shown = f"\nmean probability {fmt(mean_probability(pred, confidence, c))}" if confidence is not None else ""
    return f"predicted '{cname}'\n{pixels:,} px{shown}"


def _draw_panels(
    page: Page,
    lay: Any,
    rgb: np.ndarray,
    pred: np.ndarray,
    region: np.ndarray,
    colors: Sequence[Sequence[int]],
    c: int,
    alpha: float,
) -> None:
    """The three pictures, with the notice of a class that is not predicted."""
    size = (lay.pw * page.k, lay.ph * page.k)
    b_in, b_pr, b_cl = lay.boxes
    show = fit(rgb, size)
    page.paste(b_in, show)
    page.paste(b_pr, fit(colorize_classes(pred, colors), size, "labels"))
    small = fit(region, size, "mask")
    page.paste(b_cl, paint(show, [(small, colors[c])], alpha))
    if small.any():
        page.outline(small, [b_cl], visible(colors[c]), 0.9)
    else:
        page.notice(b_cl, NOT_PREDICTED_TEXT, room=lay.col_w[2])
