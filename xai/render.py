"""Publication figures: TP/FP/FN error maps, CAM heatmaps and a class-by-method comparison grid.

Every input is on the ORIGINAL photograph (padding cropped by the caller): rgb HxWx3 uint8, gt HxW
class ids (or None when unknown), pred HxW class ids, cam HxW float in [0, 1].

A figure is a grid of picture panels, sized from the image aspect in fixed inches. The panels are
composed with numpy/OpenCV into one RGB page that matplotlib draws 1:1 (vector formats embed it at
twice the page resolution); matplotlib adds the text, legends, contours and colour bars on top. Text
sizes are estimated from character counts, never measured. Drawing uses `Figure` + Agg (no pyplot)
under a module lock, so threads may call the `save_*` functions; processes draw in parallel. Files are
written through `xai.io.atomic_path` in the format of the path's suffix (.png, .pdf, .svg, ...).
"""

from __future__ import annotations

import math
import textwrap
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from contourpy import contour_generator
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Affine2D

from .io import atomic_path
from .metrics import error_counts, iou_dice

__all__ = [
    "ABSENT_TEXT",
    "DEFAULT_DPI",
    "FN_COLOR",
    "FP_COLOR",
    "TP_COLOR",
    "UNKNOWN_CLASS_COLOR",
    "colorize_classes",
    "error_overlay",
    "heatmap_overlay",
    "save_comparison_figure",
    "save_error_figure",
    "save_heatmap_figure",
]

TP_COLOR = (0, 200, 0)
FP_COLOR = (220, 0, 0)
FN_COLOR = (0, 80, 255)
UNKNOWN_CLASS_COLOR = (128, 128, 128)  # ids outside the palette (e.g. 255 "ignore" labels)
ABSENT_TEXT = "class absent from ground truth and prediction"
NO_GT_TEXT = "no ground truth for this image"
NO_MAP_TEXT = "no explanation"
DEFAULT_DPI = 150
DEFAULT_CMAP = "turbo"
_CBAR_LABEL = "importance (0–1)"
_ERRORS = ((TP_COLOR, "TP (correct)", "tp"), (FP_COLOR, "FP (false alarm)", "fp"), (FN_COLOR, "FN (missed)", "fn"))

_DIM = 0.75  # brightness kept by pixels that are neither TP, FP nor FN in an error overlay
_MAX_W, _MAX_H, _MAX_GRID_H = 16.0, 11.5, 21.5  # figure limits, inches (single image; comparison grid)
_PANEL_H, _MIN_PANEL_H, _MIN_COL = 4.6, 1.4, 1.15  # inches
_MARGIN, _GAP = 0.06, 0.07  # inches: around the figure, between columns
_CHAR_W, _LINE_H, _BOLD = 0.58, 1.25, 1.12  # estimated character width and line height in font sizes; bold width
_LEGEND: dict[str, Any] = {
    "frameon": False,
    "handlelength": 1.2,
    "handleheight": 0.7,
    "handletextpad": 0.6,
    "columnspacing": 1.0,
    "labelspacing": 0.4,
    "borderpad": 0.0,
    "borderaxespad": 0.0,
}
# zlib level 1, one row filter, run-length matching: about 2x faster than Pillow, files no larger
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_UP,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
]
_VECTOR = {"pdf", "svg", "svgz", "eps", "ps", "pgf"}

_MPL_LOCK = threading.Lock()  # matplotlib's caches are not documented as thread-safe


# ---- arrays ------------------------------------------------------------------------------------------


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"rgb must be a non-empty HxWx3 uint8 image, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb[..., :3])


def _as_ids(ids: np.ndarray, hw: tuple[int, ...] | None, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be an HxW array of integer class ids, got {ids.dtype} {ids.shape}")
    if hw is not None and ids.shape != tuple(hw):
        raise ValueError(f"{name} has shape {ids.shape} but the image is {tuple(hw)}")
    return ids


def _check_cam(cam: np.ndarray, hw: tuple[int, ...], name: str = "cam") -> np.ndarray:
    cam = np.asarray(cam)
    if cam.shape != tuple(hw) or not (np.issubdtype(cam.dtype, np.integer) or np.issubdtype(cam.dtype, np.floating)):
        raise ValueError(f"{name} must be a real HxW map of the image's size {tuple(hw)}, got {cam.dtype} {cam.shape}")
    cam = cam.astype(np.float32, copy=False)
    if not np.isfinite(cam).all():
        bad = "NaN" if np.isnan(cam).any() else "infinite values"
        raise ValueError(f"{name} contains {bad}; explanations must be finite values in [0, 1]")
    return cam


def _paint(
    rgb: np.ndarray, layers: Sequence[tuple[np.ndarray, Sequence[int]]], alpha: float, dim: float = _DIM
) -> np.ndarray:
    """rgb dimmed to `dim`, each (mask, colour) blended over it with weight alpha (later layers win)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out = cv2.convertScaleAbs(rgb, alpha=dim)
    for mask, colour in layers:
        blend = cv2.addWeighted(rgb, 1.0 - alpha, np.full_like(rgb, [int(v) for v in colour]), alpha, 0.0)
        out = cv2.copyTo(blend, mask.view(np.uint8), out)
    return out


def _error_layers(gt: np.ndarray, pred: np.ndarray, c: int) -> list[tuple[np.ndarray, Sequence[int]]]:
    g, p = gt == c, pred == c
    return [(g & p, TP_COLOR), (p & ~g, FP_COLOR), (g & ~p, FN_COLOR)]


def error_overlay(
    rgb: np.ndarray, gt: np.ndarray, pred: np.ndarray, class_idx: int, alpha: float = 0.6, dim: float = _DIM
) -> np.ndarray:
    """HxWx3 uint8: TP green, FP red, FN blue blended (weight `alpha`) over the image; other pixels
    keep the image dimmed to `dim` of its brightness so the colours stand out."""
    rgb = _as_rgb(rgb)
    if gt is None:
        raise ValueError("error_overlay needs a ground truth (gt is None)")
    gt, pred = _as_ids(gt, rgb.shape[:2], "gt"), _as_ids(pred, rgb.shape[:2], "pred")
    return _paint(rgb, _error_layers(gt, pred, class_idx), alpha, dim)


def colorize_classes(ids: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """HxWx3 uint8 colour mask: class i gets colors[i]; ids outside the palette are grey."""
    ids = _as_ids(ids, None, "ids")
    palette = np.asarray([[int(v) for v in c] for c in colors], np.uint8).reshape(-1, 3)
    lut = np.array([*palette, UNKNOWN_CLASS_COLOR], np.uint8)
    return lut[np.where((ids >= 0) & (ids < len(palette)), ids, len(palette))]


def heatmap_overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """HxWx3 uint8: the colour-mapped cam (vmin 0, vmax 1) alpha-blended over the image."""
    rgb = _as_rgb(rgb)
    colour = colormaps[cmap](np.clip(_check_cam(cam, rgb.shape[:2]), 0, 1), bytes=True)
    return cv2.addWeighted(rgb, 1.0 - alpha, cv2.cvtColor(colour, cv2.COLOR_RGBA2RGB), alpha, 0.0)


def _fit(arr: np.ndarray, size: tuple[int, int], kind: str = "image") -> np.ndarray:
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


def _fit_layers(layers: Sequence[tuple[np.ndarray, Any]], size: tuple[int, int]) -> list[tuple[np.ndarray, Any]]:
    """(mask, colour) layers any-pooled to size in one resize."""
    masks = _fit(np.dstack([m for m, _ in layers]), size, "mask").reshape(size[1], size[0], -1)
    return [(masks[..., i], colour) for i, (_, colour) in enumerate(layers)]


def _visible(colour: Sequence[int]) -> tuple[float, ...]:
    """The class colour for a contour on a photograph; white when too dark to see."""
    rgb = tuple(float(v) / 255 for v in colour)
    return rgb if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] >= 0.25 else (1.0, 1.0, 1.0)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _class_index(cls: int | str, class_names: Sequence[str]) -> int:
    idx = int(cls) if isinstance(cls, (int, np.integer)) else list(class_names).index(cls) if cls in class_names else -1
    if not 0 <= idx < len(class_names):
        raise ValueError(f"unknown class {cls!r}; classes 0..{len(class_names) - 1}: {', '.join(class_names)}")
    return idx


# ---- text estimates, layout ---------------------------------------------------------------------------


def _wrap(text: str, width_px: float, fs: float, dpi: float) -> str:
    """text wrapped to an estimated width_px at font size fs."""
    chars = max(4, int(width_px * 72 / dpi / (_CHAR_W * fs)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) or line for line in str(text).split("\n"))


def _text_w(text: str, fs: float) -> float:
    """Estimated width of text in points."""
    return max(len(line) for line in text.split("\n")) * _CHAR_W * fs


def _text_h(text: str, fs: float) -> float:
    return (text.count("\n") + 1) * _LINE_H * fs


def _legend_size(labels: Sequence[str], fs: float, ncol: int) -> tuple[float, float]:
    """Estimated (width, height) in points of a legend in ncol columns (filled column by column)."""
    rows = math.ceil(len(labels) / ncol)
    cols = [labels[i : i + rows] for i in range(0, len(labels), rows)]
    width = sum(1.8 * fs + max(_text_w(t, fs) for t in col) for col in cols) + (len(cols) - 1) * fs
    return width, rows * 1.2 * fs + (rows - 1) * 0.4 * fs


def _grid_shape(n: int, aspect: float, band_w: float, band_h: float) -> tuple[int, int, float]:
    """(rows, cols, panel height in inches) for n panels of aspect w/h: portrait images side by side,
    wide ones stacked so that panels stay large. band_w / band_h: inches taken by text per figure / row."""

    def fits(rows: int, cols: int) -> tuple[float, float]:  # the panel height the width allows, the height allows
        return min(_PANEL_H, (_MAX_W - band_w) / (cols * aspect)), _MAX_H / rows - band_h

    def score(rows: int, cols: int) -> float:  # panel area, less for empty cells and for each extra row
        return max(0.0, min(fits(rows, cols))) ** 2 * (n / rows / cols) ** 2 / (1 + 0.35 * (rows - 1))

    rows, cols = max(
        ((r, math.ceil(n / r)) for r in range(1, n + 1) if (r - 1) * math.ceil(n / r) < n),
        key=lambda shape: score(*shape),
    )
    by_w, by_h = fits(rows, cols)
    return rows, cols, min(by_w, max(by_h, _MIN_PANEL_H))  # many rows make a taller page, not tiny panels


def _layout(
    dpi: float,
    aspect: float,
    cols: int,
    ph_in: float,
    titles: Sequence[str],
    fs: float,
    sup: str,
    below: Mapping[int, tuple[float, float]] | None = None,
    min_col: float = _MIN_COL * 72,
    left: float = 0.0,
    right: float = 0.0,
    bottom: float = 0.0,
) -> SimpleNamespace:
    """Page pixels of len(titles) panels (aspect w/h, ph_in inches high, row-major in `cols` columns at
    least min_col points wide), each under its title (font fs; "" for none) and above `below`
    {panel: (w, h) points, 3 points below it}; a suptitle (font fs + 2) on top; bands of left / right /
    bottom px."""
    pt, margin, gap, n = dpi / 72, _MARGIN * dpi, _GAP * dpi, len(titles)
    below = below or {}
    pw, ph = max(1, int(ph_in * aspect * dpi)), max(1, int(ph_in * dpi))
    col_w = [max(pw, min_col * pt)] * cols
    for i, (w, _) in below.items():
        col_w[i % cols] = max(col_w[i % cols], w * pt)
    titles = [_wrap(t, col_w[i % cols] + gap, fs, dpi) if t else "" for i, t in enumerate(titles)]
    grid_w = sum(col_w) + (cols - 1) * gap
    width = math.ceil(max(2 * margin + left + grid_w + right, min(_text_w(sup, fs + 2) * pt, 6 * dpi) + 2 * margin))
    sup = _wrap(sup, width - 2 * margin, fs + 2, dpi)
    x0 = (width - grid_w - left - right) / 2 + left
    col_x = [x0 + sum(col_w[:c]) + c * gap for c in range(cols)]
    y = top = margin + (_text_h(sup, fs + 2) + 2) * pt
    boxes = []
    for r in range(0, n, cols):
        cells = range(r, min(n, r + cols))
        y = math.ceil(y + max((_text_h(titles[i], fs) + 5) * pt if titles[i] else 0 for i in cells))
        boxes += [(round(col_x[i % cols] + (col_w[i % cols] - pw) / 2), y, pw, ph) for i in cells]
        y += ph + max([below[i][1] + 3 for i in cells if i in below], default=0) * pt + (6 * pt if r + cols < n else 0)
    return SimpleNamespace(
        W=width,
        H=math.ceil(y + bottom + margin),
        pw=pw,
        ph=ph,
        boxes=boxes,
        titles=titles,
        fs=fs,
        sup=sup,
        top=top,
        x1=x0 + grid_w,
        y1=y,
        col_w=[col_w[i % cols] for i in range(n)],
    )


# ---- page: one RGB picture under matplotlib artists, placed in pixels from the top-left corner -------


class _Page(Artist):
    """A figure of W x H page pixels: one RGB picture with k pixels per page pixel (`pixels`, top row
    first), drawn 1:1 by Agg and scaled to the page by vector renderers, under text, legends, contours
    and colour bars."""

    def __init__(self, width: float, height: float, dpi: int, path: str | Path) -> None:
        super().__init__()
        self.fmt = Path(path).suffix.lstrip(".").lower() or "png"
        self.k = 2 if self.fmt in _VECTOR else 1
        self.W, self.H, self.dpi = math.ceil(width), math.ceil(height), dpi
        # a quarter pixel more, so that Agg's int() of the canvas size gives exactly W x H
        self.fig = Figure(figsize=((self.W + 0.25) / dpi, (self.H + 0.25) / dpi), dpi=dpi, facecolor="white")
        self.T = Affine2D().scale(1 / dpi, -1 / dpi).translate(0, (self.H + 0.25) / dpi) + self.fig.dpi_scale_trans
        # bottom row first, as renderers take images
        self.rgba = np.full((self.H * self.k, self.W * self.k, 4), 255, np.uint8)
        self.pixels = self.rgba[::-1, :, :3]
        self.fig.add_artist(self)

    def draw(self, renderer: Any) -> None:
        (x0, y0), (x1, y1) = self.T.transform([(0, self.H), (self.W, 0)])
        gc = renderer.new_gc()
        if renderer.option_scale_image():
            renderer.draw_image(gc, x0, y0, self.rgba, Affine2D().scale(x1 - x0, y1 - y0))
        else:
            renderer.draw_image(gc, round(x0), round(y0), self.rgba)
        gc.restore()

    def px(self, points: float) -> float:
        return points * self.dpi / 72

    def paste(self, box: Sequence[float], img: np.ndarray) -> None:
        x, y = round(box[0]) * self.k, round(box[1]) * self.k
        self.pixels[y : y + img.shape[0], x : x + img.shape[1]] = img[..., :3]

    def text(self, x: float, y: float, text: str, fs: float, **kw: Any) -> None:
        self.fig.text(x, y, text, transform=self.T, fontsize=fs, parse_math=False, **kw)

    def notice(self, box: Sequence[float], text: str, fs: float = 10, room: float = 0.0) -> None:
        """A boxed message centred in the panel box (x, y, w, h); room: width the column offers."""
        x, y, w, h = box
        fs = max(5.0, min(fs, h * 72 / self.dpi / 2.4))  # a low panel gets a smaller box
        self.text(
            x + w / 2,
            y + h / 2,
            _wrap(text, 0.85 * max(w, room) - self.px(fs), fs, self.dpi),
            fs,
            ha="center",
            va="center",
            multialignment="center",
            zorder=10,
            bbox={"boxstyle": "round,pad=0.5", "facecolor": "white", "edgecolor": "0.4", "alpha": 0.92},
        )

    def tag(self, x: float, y: float, text: str, fs: float, ha: str = "center") -> None:
        """White text on a dark rounded box, its bottom at y."""
        self.text(
            x,
            y,
            text,
            fs,
            ha=ha,
            va="bottom",
            color="white",
            zorder=10,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
        )

    def outline(self, mask: np.ndarray, at: Sequence[Sequence[float]], color: Any, lw: float) -> None:
        """The outline (level 0.5) of a panel-sized mask on the panels with top-left corners `at`."""
        if not mask.any() or mask.all():
            return
        lines = [
            (np.asarray(ln) + 0.5) / self.k
            for ln in contour_generator(z=mask.astype(np.float32), line_type="Separate").lines(0.5)
        ]
        self.fig.add_artist(
            LineCollection(
                [ln + xy[:2] for xy in at for ln in lines],
                colors=[color],
                linewidths=lw,
                transform=self.T,
                capstyle="round",
                joinstyle="round",
            )
        )

    def legend(
        self,
        items: Sequence[tuple[Sequence[int], str]],
        x: float,
        y: float,
        fs: float,
        ncol: int = 1,
        edge: bool = False,
    ) -> None:
        """Colour patches and labels, top-centred at (x, y)."""
        handles = [
            Patch(
                facecolor="#{:02x}{:02x}{:02x}".format(*map(int, c)),
                edgecolor="0.5" if edge else "none",
                linewidth=0.5,
                label=label,
            )
            for c, label in items
        ]
        self.fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(x, y),
            bbox_transform=self.T,
            fontsize=fs,
            ncols=ncol,
            **_LEGEND,
        )

    def colorbar(self, box: Sequence[float], cmap: str, fs: float, vertical: bool) -> None:
        """A 0-1 colour bar in the box (x, y, w, h), ticks right of it (vertical) or below."""
        x, y, w, h = box
        W, H = self.W + 0.25, self.H + 0.25
        cax = self.fig.add_axes((x / W, 1 - (y + h) / H, w / W, h / H))
        bar = self.fig.colorbar(
            ScalarMappable(Normalize(0, 1), cmap), cax=cax, orientation="vertical" if vertical else "horizontal"
        )
        bar.set_label(_CBAR_LABEL, fontsize=fs * 1.06)
        cax.tick_params(labelsize=fs, width=0.8)

    def titles(self, lay: SimpleNamespace) -> None:
        self.text(self.W / 2, _MARGIN * self.dpi, lay.sup, lay.fs + 2, ha="center", va="top", multialignment="center")
        for (x, y, w, _), t in zip(lay.boxes, lay.titles, strict=True):
            self.text(x + w / 2, y - self.px(4), t, lay.fs, ha="center", va="bottom", multialignment="center")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            if self.fmt == "png":
                canvas = FigureCanvasAgg(self.fig)
                canvas.draw()
                ok, png = cv2.imencode(
                    ".png", cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR), _PNG_PARAMS
                )
                if not ok:
                    raise RuntimeError(f"PNG encoding failed for {path}")
                tmp.write_bytes(png.tobytes())
            else:
                self.fig.savefig(tmp, format=self.fmt, dpi=self.dpi, facecolor="white")
        return path


# ---- figures -----------------------------------------------------------------------------------------


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
    rgb = _as_rgb(rgb)
    hw = rgb.shape[:2]
    gt, pred = None if gt is None else _as_ids(gt, hw, "gt"), _as_ids(pred, hw, "pred")
    c = _class_index(class_idx, class_names)
    cname = class_names[c]
    present = set(np.unique(pred).tolist()) | (set(np.unique(gt).tolist()) if gt is not None else set())
    legends = {2: [(colors[i], class_names[i]) for i in sorted(present) if 0 <= i < len(class_names)]}
    if gt is not None:
        counts = error_counts(gt, pred, c)
        iou, dice = iou_dice(counts)
        layers = _error_layers(gt, pred, c)
        ov_title = f"errors for '{cname}'\nIoU {_fmt(iou)} · Dice {_fmt(dice)}"
        legends[3] = [(colour, f"{name}: {counts[key]:,} px") for colour, name, key in _ERRORS]
    else:
        iou, layers = None, [(pred == c, colors[c])]
        ov_title = f"predicted '{cname}'\n(no ground truth)"
    aspect = hw[1] / hw[0]
    labels = {i: [t for _, t in items] for i, items in legends.items() if items}
    # text bands: two title lines, a legend of three rows and their pads
    _, cols, ph_in = _grid_shape(4, aspect, 0.4, (2 * _LINE_H * 10 + 14 + 5.2 * 8.5) / 72)
    col_pt = 72 * max(ph_in * aspect, _MIN_COL)
    ncol = {3: 1}
    if 2 in labels:  # the class legend in as many columns as fit under its panel (3 under a panel 3.2 in wide)
        fitting = [n for n in (3, 2) if (n == 2 or col_pt >= 3.2 * 72) and _legend_size(labels[2], 8.5, n)[0] <= col_pt]
        ncol[2] = fitting[0] if fitting else 1
    with _MPL_LOCK:
        lay = _layout(
            dpi,
            aspect,
            cols,
            ph_in,
            ["input image", "ground truth", "prediction", ov_title],
            10,
            title if title is not None else f"Segmentation errors for class '{cname}'",
            {i: _legend_size(t, 8.5, ncol[i]) for i, t in labels.items()},
        )
        page = _Page(lay.W, lay.H, dpi, path)
        size = (lay.pw * page.k, lay.ph * page.k)
        b_in, b_gt, b_pr, b_ov = lay.boxes
        show = _fit(rgb, size)
        page.paste(b_in, show)
        if gt is not None:
            page.paste(b_gt, _fit(colorize_classes(gt, colors), size, "labels"))
        else:
            page.paste(b_gt, cv2.convertScaleAbs(show, alpha=0.35))
            page.notice(b_gt, NO_GT_TEXT, room=lay.col_w[1])
        page.paste(b_pr, _fit(colorize_classes(pred, colors), size, "labels"))
        small = _fit_layers(layers, size)
        page.paste(b_ov, _paint(show, small, alpha))
        if gt is None:
            page.outline(small[0][0], [b_ov], _visible(colors[c]), 0.9)
        elif iou is None:
            page.notice(b_ov, ABSENT_TEXT, room=lay.col_w[3])
        page.titles(lay)
        for i in labels:
            x, y, w, h = lay.boxes[i]
            page.legend(legends[i], x + w / 2, y + h + page.px(3), 8.5, ncol[i], edge=i == 2)
        return page.save(path)


def save_heatmap_figure(
    path: str | Path,
    rgb: np.ndarray,
    cam: np.ndarray | None,
    class_name: str,
    method: str,
    note: str | None = None,
    region_contour: np.ndarray | None = None,
    *,
    title: str | None = None,
    cmap: str = DEFAULT_CMAP,
    alpha: float = 0.5,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Input | heatmap with colour bar | heatmap over the image.

    cam None: `note` (or "no explanation") replaces the heatmap in the last two panels; with a cam, a
    note is a caption on the overlay. region_contour: HxW bool mask drawn as a thin white contour on
    the overlay. A cam with NaN or infinite values raises ValueError.
    """
    rgb = _as_rgb(rgb)
    hw = rgb.shape[:2]
    cam = None if cam is None else _check_cam(cam, hw)
    colormaps[cmap]  # unknown colour maps fail here, before anything is drawn
    if region_contour is not None and np.shape(region_contour) != hw:
        raise ValueError(f"region_contour has shape {np.shape(region_contour)} but the image is {hw}")
    peak = f" (max {float(cam.max()):.2f})" if cam is not None else ""
    right = (7 + 9 + 7 + _text_w("0.0", 8) + 4 + _LINE_H * 8.5) * dpi / 72  # gap, bar, ticks, labels
    titles = ["input image", f"{method} heatmap{peak}", f"{method} over the image"]
    _, cols, ph_in = _grid_shape(3, hw[1] / hw[0], right / dpi + 0.4, (2 * _LINE_H * 10 + 11) / 72)
    with _MPL_LOCK:
        lay = _layout(
            dpi,
            hw[1] / hw[0],
            cols,
            ph_in,
            titles,
            10,
            title if title is not None else f"{method} explanation of class '{class_name}'",
            right=right,
        )
        b_in, b_hm, b_ov = lay.boxes
        # the colour bar: right of the grid, along 85% of the heatmap panels, long enough for its label
        top, bottom = min(b_hm[1], b_ov[1]), max(b_hm[1], b_ov[1]) + lay.ph
        length = max(0.85 * (bottom - top), (_text_w(_CBAR_LABEL, 8.5) + 12) * dpi / 72)
        bar_y = max(lay.top, (top + bottom - length) / 2)
        page = _Page(lay.W, max(lay.H, bar_y + length + _MARGIN * dpi), dpi, path)
        size = (lay.pw * page.k, lay.ph * page.k)
        show = _fit(rgb, size)
        page.paste(b_in, show)
        if cam is not None:
            small = np.clip(_fit(cam, size), 0, 1)
            page.paste(b_hm, colormaps[cmap](small, bytes=True))
            page.paste(b_ov, heatmap_overlay(show, small, alpha, cmap))
            if not cam.any():
                page.notice(b_hm, "the map is zero everywhere", 9, lay.col_w[1])
            if note:  # a caption in the lower left corner, or centred in the column of a narrow panel
                x, y, w, h = b_ov
                wide = lay.col_w[2] > 1.05 * w
                text = _wrap(note, 0.95 * (lay.col_w[2] if wide else w) - page.px(8), 8, dpi)
                page.tag(
                    x + w / 2 if wide else x + 0.02 * w + page.px(2.4),
                    y + 0.99 * h - page.px(2.4),
                    text,
                    8,
                    ha="center" if wide else "left",
                )
        else:
            page.paste(b_hm, np.full((size[1], size[0], 3), 235, np.uint8))
            page.paste(b_ov, cv2.convertScaleAbs(show, alpha=0.45))
            page.notice(b_hm, note or NO_MAP_TEXT, room=lay.col_w[1])
            page.notice(b_ov, note or NO_MAP_TEXT, room=lay.col_w[2])
        if region_contour is not None:
            page.outline(_fit(np.asarray(region_contour), size, "mask"), [b_ov], "white", 0.8)
        page.colorbar((lay.x1 + page.px(7), bar_y, page.px(9), length), cmap, 8.0, vertical=True)
        page.titles(lay)
        return page.save(path)


def _method_maps(value: Any, n_classes: int, hw: tuple[int, ...], method: str) -> list[np.ndarray | None]:
    """One entry of `maps`: CxHxW array, a length-C sequence of HxW arrays / None, or None."""
    if value is None:
        return [None] * n_classes
    if isinstance(value, (Mapping, str, bytes)) or (isinstance(value, np.ndarray) and value.ndim != 3):
        raise ValueError(f"maps[{method!r}] must be a CxHxW array or a list with one map (or None) per class")
    if len(value) != n_classes:
        raise ValueError(f"maps[{method!r}] has {len(value)} entries for {n_classes} classes")
    return [None if v is None else _check_cam(v, hw, f"maps[{method!r}][{i}]") for i, v in enumerate(value)]


def _lookup_note(notes: Mapping[Any, Any] | None, method: str, cname: str) -> str | None:
    """notes[(method, class)], notes[method][class] or notes[class]."""
    notes = notes or {}
    if (method, cname) in notes:
        return str(notes[(method, cname)])
    value = notes[method].get(cname) if isinstance(notes.get(method), Mapping) else notes.get(cname)
    return None if value is None or isinstance(value, Mapping) else str(value)


def save_comparison_figure(
    path: str | Path,
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
) -> Path:
    """One row per class: image + ground-truth contour | TP/FP/FN of the prediction with IoU/Dice |
    one heatmap overlay per method; a shared colour bar; class names label the rows.

    maps: {method: CxHxW array, or a length-C list of HxW arrays / None, or None}; columns follow its order.
    classes_to_show: class indices or names (default: every class).
    notes: text shown where a map is None, keyed by (method, class_name), {method: {class_name: text}},
    or {class_name: text} for every method; default "no explanation".
    contour_on_maps: draw the class's ground-truth contour (prediction contour without gt) in white on
    the heatmap overlays.
    """
    rgb = _as_rgb(rgb)
    hw = rgb.shape[:2]
    gt, pred = None if gt is None else _as_ids(gt, hw, "gt"), _as_ids(pred, hw, "pred")
    show = [
        _class_index(c, class_names) for c in (range(len(class_names)) if classes_to_show is None else classes_to_show)
    ]
    if not show:
        raise ValueError("classes_to_show is empty")
    methods = [str(m) for m in maps]
    per_method = {str(m): _method_maps(v, len(class_names), hw, str(m)) for m, v in maps.items()}
    colormaps[cmap]  # unknown colour maps fail here, before anything is drawn
    scores = {c: iou_dice(error_counts(gt, pred, c)) for c in show} if gt is not None else {}
    captions = {
        c: f"IoU {_fmt(scores[c][0])} · Dice {_fmt(scores[c][1])}" if scores else "no ground truth" for c in show
    }
    error_items = [(colour, name) for colour, name, _ in _ERRORS]

    # the panel height that fits 16 x 21.5 in with the text around; fonts follow the panel width
    aspect, nrows, ncols, pt = hw[1] / hw[0], len(show), 2 + len(methods), dpi / 72
    label_w = max(min(_text_w(class_names[c], 11 * _BOLD), 94) for c in show) / 72 + 0.1
    band_w = label_w + 2 * _MARGIN + (ncols - 1) * _GAP
    ph_in = min(4.2, (_MAX_W - band_w) / (ncols * aspect), max((_MAX_GRID_H - 1.3) / nrows - 0.3, _MIN_PANEL_H))
    fs = float(np.clip(ph_in * aspect * 3.2, 7.0, 10.0))
    legend = _legend_size([t for _, t in error_items], 0.9 * fs, 1) if gt is not None else (0.0, 0.0)
    cw = max(ph_in * aspect * 72, _MIN_COL * 72, legend[0], max(_text_w(t, fs) for t in captions.values())) * pt
    rotate = max(_text_w(class_names[c], (fs + 2) * _BOLD) for c in show) <= ph_in * 72
    labels = {c: class_names[c] if rotate else _wrap(class_names[c], 1.3 * dpi, (fs + 1) * _BOLD, dpi) for c in show}
    left = max((_LINE_H * (fs + 2) if rotate else _text_w(t, (fs + 1) * _BOLD)) for t in labels.values()) * pt
    bar_thick = min(max(6, (len(methods) * cw / pt) / max(12, 10 * len(methods))), 14) * pt
    bottom = max(legend[1] * pt, bar_thick + (7 + _LINE_H * 1.96 * fs) * pt if methods else 0) + 4 * pt
    col_titles = [
        "image + ground truth" if gt is not None else "image (no ground truth)",
        "prediction: TP/FP/FN" if gt is not None else "prediction",
        *methods,
    ]
    with _MPL_LOCK:
        lay = _layout(
            dpi,
            aspect,
            ncols,
            ph_in,
            col_titles + [""] * (ncols * (nrows - 1)),
            fs + 1,
            title if title is not None else "Explanations per class",
            {r * ncols + 1: (0, _text_h("I", fs)) for r in range(nrows)},
            cw / pt,
            left + _GAP * dpi,
            bottom=bottom,
        )
        page = _Page(lay.W, lay.H, dpi, path)
        pw, ph = lay.pw, lay.ph
        size = (pw * page.k, ph * page.k)
        img = _fit(rgb, size)
        dimmed = cv2.convertScaleAbs(img, alpha=0.45)
        for r, c in enumerate(show):
            b_img, b_err, *b_maps = lay.boxes[r * ncols : (r + 1) * ncols]
            x0, y = b_img[:2]
            p = _fit(pred == c, size, "mask")
            page.paste(b_img, img)
            if gt is not None:
                g = _fit(gt == c, size, "mask")
                page.outline(g, [b_img], _visible(colors[c]), 1.0)
                if not g.any():
                    tag_fs = max(5.0, min(0.85 * fs, ph / pt / 2.2))
                    page.tag(x0 + pw / 2, y + 0.98 * ph - page.px(0.3 * tag_fs), "not in ground truth", tag_fs)
                page.paste(b_err, _paint(img, _fit_layers(_error_layers(gt, pred, c), size), 0.8))
                if scores[c][0] is None:
                    page.notice(b_err, ABSENT_TEXT, fs, cw)
            else:
                page.paste(b_err, _paint(img, [(p, colors[c])], 0.8))
                page.outline(p, [b_err], _visible(colors[c]), 0.8)
            page.text(b_err[0] + pw / 2, y + ph + 3 * pt, captions[c], fs, ha="center", va="top")
            page.text(
                x0 + pw / 2 - cw / 2 - _GAP * dpi / 2,
                y + ph / 2,
                labels[c],
                fs + 2 if rotate else fs + 1,
                ha="right",
                va="center",
                rotation=90 if rotate else 0,
                fontweight="bold",
                multialignment="center",
            )
            drawn = []
            for m, box in zip(methods, b_maps, strict=True):
                cam = per_method[m][c]
                if cam is None:
                    page.paste(box, dimmed)
                    page.notice(box, _lookup_note(notes, m, class_names[c]) or NO_MAP_TEXT, 0.9 * fs, cw)
                else:
                    page.paste(box, heatmap_overlay(img, np.clip(_fit(cam, size), 0, 1), alpha, cmap))
                    drawn.append(box)
            if contour_on_maps and drawn:
                page.outline(g if gt is not None else p, drawn, "white", 0.7)
        page.titles(lay)
        # bottom band: TP/FP/FN legend under the prediction column, colour bar under the method columns
        band_y = lay.y1 + 4 * pt
        if gt is not None:
            page.legend(error_items, lay.boxes[1][0] + pw / 2, band_y, 0.9 * fs)
        if methods:
            x0, x1 = lay.boxes[2][0] + (pw - cw) / 2, lay.boxes[ncols - 1][0] + (pw + cw) / 2
            page.colorbar((x0 + 0.05 * (x1 - x0), band_y, 0.9 * (x1 - x0), bar_thick), cmap, 0.9 * fs, vertical=False)
        return page.save(path)
