"""The comparison grid of one sample: a row per class, image + ground truth, errors, one map per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib import colormaps

from ..metrics import error_counts, iou_dice
from .overlays import (
    ABSENT_TEXT,
    DEFAULT_CMAP,
    ERRORS,
    NO_MAP_TEXT,
    as_ids,
    as_rgb,
    check_cam,
    class_index,
    error_layers,
    fit,
    fit_layers,
    fmt,
    heatmap_overlay,
    paint,
    visible,
)
from .page import (
    BOLD,
    DEFAULT_DPI,
    GAP,
    LINE_H,
    MARGIN,
    MAX_GRID_H,
    MAX_W,
    MIN_COL,
    MIN_PANEL_H,
    MPL_LOCK,
    Page,
    legend_size,
    page_layout,
    text_height,
    text_width,
    wrap,
)


def _method_maps(value: Any, n_classes: int, hw: tuple[int, ...], method: str) -> list[np.ndarray | None]:
    """One entry of `maps`: CxHxW array, a length-C sequence of HxW arrays / None, or None."""
    if value is None:
        return [None] * n_classes
    if isinstance(value, (Mapping, str, bytes)) or (isinstance(value, np.ndarray) and value.ndim != 3):
        raise ValueError(f"maps[{method!r}] must be a CxHxW array or a list with one map (or None) per class")
    if len(value) != n_classes:
        raise ValueError(f"maps[{method!r}] has {len(value)} entries for {n_classes} classes")
    return [None if v is None else check_cam(v, hw, f"maps[{method!r}][{i}]") for i, v in enumerate(value)]


def _lookup_note(notes: Mapping[Any, Any] | None, method: str, cname: str) -> str | None:
    """notes[(method, class)], notes[method][class] or notes[class]."""
    notes = notes or {}
    if (method, cname) in notes:
        return str(notes[(method, cname)])
    value = notes[method].get(cname) if isinstance(notes.get(method), Mapping) else notes.get(cname)
    return None if value is None or isinstance(value, Mapping) else str(value)


def save_comparison_figure(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    """The comparison page saved to `path` (its suffix: the format); the other arguments are
    `comparison_page`'s (rgb, gt, pred, maps, class_names, colors, classes_to_show, notes, and title,
    cmap, alpha, contour_on_maps, dpi by keyword), all but its `fmt`."""
    with MPL_LOCK:
        return comparison_page(*args, **kwargs, fmt=Path(path).suffix.lstrip(".") or "png").save(path)


def comparison_page(
    rgb: np.ndarray,
    gt: np.ndarray | None,
    pred: np.ndarray,
    maps: Mapping[str, Any],
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    classes_to_show: Sequence[int | str] | None = None,
    notes: Mapping[Any, Any] | None = None,
    *,
    title: str | None = None,
    cmap: str = DEFAULT_CMAP,
    alpha: float = 0.5,
    contour_on_maps: bool = True,
    dpi: int = DEFAULT_DPI,
    fmt: str = "png",
) -> Page:
    """One row per class: image + ground-truth contour | TP/FP/FN of the prediction with IoU/Dice (the
    predicted classes without gt) | one heatmap overlay per method; a shared colour bar; class names label
    the rows. `Page.render()` gives its pixels, `Page.save(path)` the file.

    maps: {method: CxHxW array, or a length-C list of HxW arrays / None, or None}; columns follow its order.
    classes_to_show: class indices or names (default: every class).
    notes: text shown where a map is None, keyed by (method, class_name), {method: {class_name: text}},
    or {class_name: text} for every method; default "no explanation".
    contour_on_maps: draw the class's ground-truth contour (prediction contour without gt) in white on
    the heatmap overlays.
    """
    rgb = as_rgb(rgb)
    hw = rgb.shape[:2]
    gt, pred = None if gt is None else as_ids(gt, hw, "gt"), as_ids(pred, hw, "pred")
    show = _shown_classes(classes_to_show, class_names)
    methods = [str(m) for m in maps]
    per_method = {str(m): _method_maps(v, len(class_names), hw, str(m)) for m, v in maps.items()}
    colormaps[cmap]  # unknown colour maps fail here, before anything is drawn
    scores, captions = _scores_and_captions(gt, pred, show)
    grid = _Grid.fit(hw, [class_names[c] for c in show], len(methods), list(captions.values()), gt is not None, dpi)
    ncols = 2 + len(methods)
    with MPL_LOCK:
        lay = _layout(grid, methods, len(show), gt is not None, title, dpi)
        page = Page(lay.W, lay.H, dpi, f"page.{fmt}")
        img = fit(rgb, (lay.pw * page.k, lay.ph * page.k))
        for r, c in enumerate(show):
            row = _Row(page, lay, grid, img, lay.boxes[r * ncols : (r + 1) * ncols])
            row.draw_errors(gt, pred, c, colors[c], captions[c], scores.get(c, (None, None))[0] is None)
            row.draw_label(grid.labels[r])
            cams = [per_method[m][c] for m in methods]
            texts = [_lookup_note(notes, m, class_names[c]) or NO_MAP_TEXT for m in methods]
            row.draw_maps(cams, texts, alpha, cmap, contour_on_maps)
        page.titles(lay)
        _bottom_band(page, lay, grid, len(methods), gt is not None, cmap)
        return page


def _shown_classes(classes_to_show: Sequence[int | str] | None, class_names: Sequence[str]) -> list[int]:
    """The indices of the rows' classes (every class by default); none is refused."""
    show = [
        class_index(c, class_names) for c in (range(len(class_names)) if classes_to_show is None else classes_to_show)
    ]
    if not show:
        raise ValueError("classes_to_show is empty")
    return show


def _scores_and_captions(
    gt: np.ndarray | None, pred: np.ndarray, show: list[int]
) -> tuple[dict[int, tuple[float | None, float | None]], dict[int, str]]:
    """{class: (IoU, Dice)} at full resolution (empty without gt) and the caption under each error panel."""
    scores = {c: iou_dice(error_counts(gt, pred, c)) for c in show} if gt is not None else {}
    captions = {c: f"IoU {fmt(scores[c][0])} · Dice {fmt(scores[c][1])}" if scores else "no ground truth" for c in show}
    return scores, captions


def _layout(grid: _Grid, methods: list[str], rows: int, has_gt: bool, title: str | None, dpi: int) -> Any:
    """Page pixels of the grid (xai.figures.page.page_layout): column titles over the first row, a caption
    line under each error panel, the row labels' band on the left, the legend and colour bar band below."""
    col_titles = [
        "image + ground truth" if has_gt else "image (no ground truth)",
        "prediction: TP/FP/FN" if has_gt else "prediction",
        *methods,
    ]
    ncols = 2 + len(methods)
    return page_layout(
        dpi,
        grid.aspect,
        ncols,
        grid.ph_in,
        col_titles + [""] * (ncols * (rows - 1)),
        grid.fs + 1,
        title if title is not None else "Explanations per class",
        {r * ncols + 1: (0, text_height("I", grid.fs)) for r in range(rows)},
        grid.cw / grid.pt,
        grid.left + GAP * dpi,
        bottom=grid.bottom,
    )


@dataclass
class _Grid:
    """Sizes of a comparison grid: the panel height that fits 16 x 21.5 in with the text around; fonts
    follow the panel width."""

    aspect: float
    pt: float  # pixels per point
    ph_in: float
    fs: float
    cw: float  # column width, pixels
    rotate: bool  # class names rotated along the rows
    labels: list[str]
    left: float
    bar_thick: float
    bottom: float

    @classmethod
    def fit(
        cls, hw: tuple[int, ...], names: list[str], n_methods: int, captions: list[str], has_gt: bool, dpi: int
    ) -> _Grid:
        aspect, nrows, ncols, pt = hw[1] / hw[0], len(names), 2 + n_methods, dpi / 72
        label_w = max(min(text_width(n, 11 * BOLD), 94) for n in names) / 72 + 0.1
        band_w = label_w + 2 * MARGIN + (ncols - 1) * GAP
        ph_in = min(4.2, (MAX_W - band_w) / (ncols * aspect), max((MAX_GRID_H - 1.3) / nrows - 0.3, MIN_PANEL_H))
        fs = float(np.clip(ph_in * aspect * 3.2, 7.0, 10.0))
        legend = legend_size([t for _, t, _ in ERRORS], 0.9 * fs, 1) if has_gt else (0.0, 0.0)
        cw = max(ph_in * aspect * 72, MIN_COL * 72, legend[0], max(text_width(t, fs) for t in captions)) * pt
        rotate = max(text_width(n, (fs + 2) * BOLD) for n in names) <= ph_in * 72
        labels = [n if rotate else wrap(n, 1.3 * dpi, (fs + 1) * BOLD, dpi) for n in names]
        left = max((LINE_H * (fs + 2) if rotate else text_width(t, (fs + 1) * BOLD)) for t in labels) * pt
        bar_thick = min(max(6, (n_methods * cw / pt) / max(12, 10 * n_methods)), 14) * pt
        bottom = max(legend[1] * pt, bar_thick + (7 + LINE_H * 1.96 * fs) * pt if n_methods else 0) + 4 * pt
        return cls(aspect, pt, ph_in, fs, cw, rotate, labels, left, bar_thick, bottom)


@dataclass
class _Row:
    """One class's row of panels: image, errors, then one map per method."""

    page: Page
    lay: Any
    grid: _Grid
    img: np.ndarray
    boxes: Sequence[Sequence[float]]
    outline: np.ndarray | None = None  # the class's ground truth (else prediction) at panel size

    def draw_errors(
        self, gt: np.ndarray | None, pred: np.ndarray, c: int, colour: Sequence[int], caption: str, absent: bool
    ) -> None:
        page, g, (b_img, b_err) = self.page, self.grid, self.boxes[:2]
        pw, ph = self.lay.pw, self.lay.ph
        size = (pw * page.k, ph * page.k)
        x0, y = b_img[:2]
        page.paste(b_img, self.img)
        p = fit(pred == c, size, "mask")
        if gt is not None:
            truth = fit(gt == c, size, "mask")
            page.outline(truth, [b_img], visible(colour), 1.0)
            if not truth.any():
                tag_fs = max(5.0, min(0.85 * g.fs, ph / g.pt / 2.2))
                page.tag(x0 + pw / 2, y + 0.98 * ph - page.px(0.3 * tag_fs), "not in ground truth", tag_fs)
            page.paste(b_err, paint(self.img, fit_layers(error_layers(gt, pred, c), size), 0.8))
            if absent:
                page.notice(b_err, ABSENT_TEXT, g.fs, g.cw)
            self.outline = truth
        else:
            page.paste(b_err, paint(self.img, [(p, colour)], 0.8))
            page.outline(p, [b_err], visible(colour), 0.8)
            self.outline = p
        page.text(b_err[0] + pw / 2, y + ph + 3 * g.pt, caption, g.fs, ha="center", va="top")

    def draw_label(self, label: str) -> None:
        g, (x0, y) = self.grid, self.boxes[0][:2]
        self.page.text(
            x0 + self.lay.pw / 2 - g.cw / 2 - GAP * self.page.dpi / 2,
            y + self.lay.ph / 2,
            label,
            g.fs + 2 if g.rotate else g.fs + 1,
            ha="right",
            va="center",
            rotation=90 if g.rotate else 0,
            fontweight="bold",
            multialignment="center",
        )

    def draw_maps(
        self, cams: list[np.ndarray | None], notes: list[str], alpha: float, cmap: str, contour: bool
    ) -> None:
        page, size = self.page, (self.lay.pw * self.page.k, self.lay.ph * self.page.k)
        drawn = []
        for cam, note, box in zip(cams, notes, self.boxes[2:], strict=True):
            if cam is None:
                page.paste(box, cv2.convertScaleAbs(self.img, alpha=0.45))
                page.notice(box, note, 0.9 * self.grid.fs, self.grid.cw)
            else:
                page.paste(box, heatmap_overlay(self.img, np.clip(fit(cam, size), 0, 1), alpha, cmap))
                drawn.append(box)
        if contour and drawn and self.outline is not None:
            page.outline(self.outline, drawn, "white", 0.7)


def _bottom_band(page: Page, lay: Any, grid: _Grid, n_methods: int, has_gt: bool, cmap: str) -> None:
    """The TP/FP/FN legend under the prediction column, the colour bar under the method columns."""
    band_y, pw = lay.y1 + 4 * grid.pt, lay.pw
    if has_gt:
        page.legend([(colour, name) for colour, name, _ in ERRORS], lay.boxes[1][0] + pw / 2, band_y, 0.9 * grid.fs)
    if n_methods:
        x0, x1 = lay.boxes[2][0] + (pw - grid.cw) / 2, lay.boxes[1 + n_methods][0] + (pw + grid.cw) / 2
        page.colorbar(
            (x0 + 0.05 * (x1 - x0), band_y, 0.9 * (x1 - x0), grid.bar_thick), cmap, 0.9 * grid.fs, vertical=False
        )
