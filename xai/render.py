"""Publication figures: TP/FP/FN error maps, CAM heatmaps and a class-by-method comparison grid.

Every input is already on the ORIGINAL photograph (padding cropped by the caller):
rgb HxWx3 uint8, gt HxW uint8 class ids (or None when unknown), pred HxW uint8 class ids,
cam HxW float32 in [0, 1].

Figures are laid out by hand (no constrained/tight layout, no Axes per panel): panel sizes follow
the image aspect, the bands for titles, legends, captions and the colour bar are measured with the
real fonts, and all pictures are composed into one page drawn pixel for pixel; text, legends,
contours and colour-bar ticks are vector artists on top. A figure of one image takes ~0.1 s.
Drawing uses `matplotlib.figure.Figure` + `FigureCanvasAgg` (never pyplot, so no global figure
state) and is serialised by one module lock because matplotlib's own caches (fonts) are not
documented as thread-safe: calling the `save_*` functions from worker threads is safe. Every file is
written through `xai.io.atomic_path`, so a killed run never leaves a half-written figure behind.
The format follows the suffix of `path` (.png, .pdf, .svg, ...); PNGs use fast zlib compression,
vector formats embed the pictures at twice the page resolution.
"""
from __future__ import annotations

import io
import math
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from contourpy import contour_generator
from matplotlib import colormaps, rcParams
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.image import FigureImage
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.transforms import Affine2D

from .io import atomic_path

__all__ = [
    "TP_COLOR",
    "FP_COLOR",
    "FN_COLOR",
    "ABSENT_TEXT",
    "DEFAULT_DPI",
    "error_counts",
    "iou_dice",
    "error_overlay",
    "colorize_classes",
    "heatmap_overlay",
    "save_error_figure",
    "save_heatmap_figure",
    "save_comparison_figure",
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

_DIM = 0.75  # brightness kept by pixels that are neither TP, FP nor FN in an error overlay
_MAX_FIG_W = 16.0  # inches
_MAX_FIG_H = 10.0  # inches, single-sample figures
_MAX_GRID_H = 21.0  # inches, comparison grid
_PANEL_H = 4.6  # preferred panel height, inches
_MIN_PANEL_H = 1.4

# Serialises all matplotlib work in this module (figure construction, drawing, saving).
_MPL_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# array helpers (no matplotlib)
# --------------------------------------------------------------------------------------------------

def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"rgb must be an HxWx3 image, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb is empty: shape {rgb.shape}")
    return np.ascontiguousarray(rgb[..., :3])


def _as_ids(ids: np.ndarray | None, hw: tuple[int, int] | None, name: str) -> np.ndarray | None:
    if ids is None:
        return None
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{name} must be an HxW array of class ids, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got {ids.dtype}")
    if hw is not None and ids.shape != tuple(hw):
        raise ValueError(f"{name} has shape {ids.shape} but the image is {tuple(hw)}")
    return ids


def _check_cam(cam: np.ndarray | None, hw: tuple[int, int], name: str = "cam") -> np.ndarray | None:
    if cam is None:
        return None
    cam = np.asarray(cam)
    if cam.ndim != 2 or cam.shape != tuple(hw):
        raise ValueError(f"{name} must be an HxW map of the image's size {tuple(hw)}, got shape {cam.shape}")
    if not np.issubdtype(cam.dtype, np.number) or np.issubdtype(cam.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real-valued map, got {cam.dtype}")
    cam = cam.astype(np.float32, copy=False)
    if not np.isfinite(cam).all():
        bad = "NaN" if np.isnan(cam).any() else "infinite values"
        raise ValueError(f"{name} contains {bad}; explanations must be finite values in [0, 1]")
    return cam


def error_counts(gt: np.ndarray, pred: np.ndarray, class_idx: int) -> dict[str, int]:
    """Pixel counts of one class: tp (gt and pred), fp (pred only), fn (gt only)."""
    if gt is None:
        raise ValueError("error_counts needs a ground truth (gt is None)")
    gt = _as_ids(gt, None, "gt")
    pred = _as_ids(pred, gt.shape, "pred")
    g = gt == class_idx
    p = pred == class_idx
    return {
        "tp": int(np.count_nonzero(g & p)),
        "fp": int(np.count_nonzero(p & ~g)),
        "fn": int(np.count_nonzero(g & ~p)),
    }


def iou_dice(counts: Mapping[str, int]) -> tuple[float | None, float | None]:
    """IoU and Dice from error_counts(); (None, None) when the class is absent from gt and pred."""
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    if tp + fp + fn == 0:
        return None, None
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def error_overlay(rgb: np.ndarray, gt: np.ndarray, pred: np.ndarray, class_idx: int,
                  alpha: float = 0.6, dim: float = _DIM) -> np.ndarray:
    """HxWx3 uint8: TP green, FP red, FN blue blended (weight `alpha`) over the image.

    Other pixels keep the image, dimmed to `dim` of its brightness so the colours stand out.
    """
    rgb = _as_rgb(rgb)
    if gt is None:
        raise ValueError("error_overlay needs a ground truth (gt is None)")
    gt = _as_ids(gt, rgb.shape[:2], "gt")
    pred = _as_ids(pred, rgb.shape[:2], "pred")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    g = gt == class_idx
    p = pred == class_idx
    out = rgb.astype(np.float32) * float(dim)
    for mask, colour in ((g & p, TP_COLOR), (p & ~g, FP_COLOR), (g & ~p, FN_COLOR)):
        if mask.any():
            out[mask] = (1.0 - alpha) * rgb[mask].astype(np.float32) + alpha * np.asarray(colour, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _tint(rgb: np.ndarray, mask: np.ndarray, colour: Sequence[int], alpha: float = 0.6,
          dim: float = _DIM) -> np.ndarray:
    out = rgb.astype(np.float32) * float(dim)
    if mask.any():
        out[mask] = (1.0 - alpha) * rgb[mask].astype(np.float32) + alpha * np.asarray(colour, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colorize_classes(ids: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """HxWx3 uint8 colour mask: class i gets colors[i]; ids outside the palette are grey."""
    ids = _as_ids(ids, None, "ids")
    palette = np.asarray([tuple(int(v) for v in c) for c in colors], dtype=np.uint8).reshape(-1, 3)
    if ids.dtype == np.uint8:  # a lookup table over every possible id is much faster than masks
        lut = np.empty((256, 3), np.uint8)
        lut[:] = UNKNOWN_CLASS_COLOR
        lut[:min(len(palette), 256)] = palette[:256]
        return lut[ids]
    out = np.empty((*ids.shape, 3), dtype=np.uint8)
    out[:] = UNKNOWN_CLASS_COLOR
    valid = (ids >= 0) & (ids < len(palette))
    out[valid] = palette[ids[valid].astype(np.intp)]
    return out


def heatmap_overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """HxWx3 uint8: the colour-mapped cam (vmin 0, vmax 1) alpha-blended over the image."""
    rgb = _as_rgb(rgb)
    cam = _check_cam(cam, rgb.shape[:2])
    colour = colormaps[cmap](np.clip(cam, 0.0, 1.0))[..., :3].astype(np.float32) * 255.0
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# page layout
#
# Figures are laid out by hand in pixels of the output (x to the right, y down from the top-left
# corner): panel sizes follow the image aspect, and every band around them (titles, captions,
# legends, colour bar, row labels) is measured with the real fonts before the figure size is fixed.
# All the pictures of a figure are composed into one RGB page that is drawn pixel for pixel (no
# resampling by matplotlib); text, legends, contours and colour-bar ticks are vector artists on top.
# This avoids matplotlib's layout engines and per-panel Axes, which cost most of the time.
# --------------------------------------------------------------------------------------------------

_VECTOR_FORMATS = {"pdf", "svg", "svgz", "eps", "ps", "pgf"}
_VECTOR_OVERSAMPLE = 2  # pictures in vector files are embedded at twice the page resolution
_PNG_COMPRESSION = 1  # zlib level: several times faster than the default and, on photographs, about as small

_MARGIN_IN = 0.06  # around the figure
_GAP_IN = 0.07  # between panels of a row
_ROW_GAP_PT = 6.0  # between a row (with its captions) and the titles of the next
_TITLE_PAD_PT = 5.0  # between a title and its panel
_TITLE_FS = 10.0
_SUPTITLE_FS = 12.0
_LEGEND_FS = 8.5
_MIN_COL_IN = 1.15  # narrow (tall) images get columns at least this wide, for titles and captions
_SUPTITLE_W_IN = 6.0  # a figure is widened up to this for its title to fit on one line


def _panel_height(aspect: float, rows: int, cols: int, max_w: float, max_h: float,
                  preferred: float = _PANEL_H) -> float:
    """Panel height (inches) so that rows x cols panels of aspect w/h fit in max_w x max_h."""
    return max(_MIN_PANEL_H, min(preferred, max_w / (cols * aspect), max_h / rows))


def _choose_grid(n: int, aspect: float) -> tuple[int, int, float]:
    """(rows, cols, panel height) for n panels of one image: portrait images in one row,
    wide images stacked so that panels stay large."""
    best = None
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        if (rows - 1) * cols >= n:  # an entirely empty row
            continue
        ph = _panel_height(aspect, rows, cols, _MAX_FIG_W, _MAX_FIG_H)
        # score the size that fits the page (not the _MIN_PANEL_H floor): very wide images stack
        fit = min(_PANEL_H, _MAX_FIG_W / (cols * aspect), _MAX_FIG_H / rows)
        area = fit * fit * aspect
        score = area * (n / (rows * cols)) ** 2 / (1.0 + 0.35 * (rows - 1))
        if best is None or score > best[0] + 1e-9:
            best = (score, rows, cols, ph)
    _, rows, cols, ph = best
    return rows, cols, ph


def _panel_px(ph_in: float, aspect: float, dpi: float) -> tuple[int, int]:
    """(width, height) of a panel in whole output pixels."""
    ph = max(1, int(round(ph_in * dpi)))
    return max(1, int(round(ph * aspect))), ph


def _solve_panel_height(layout: Any, ph_in: float, max_w_in: float, max_h_in: float, dpi: float,
                        iterations: int = 4) -> Any:
    """Call layout(panel height in inches) -> plan (with .W, .H in px and .rows, .cols, .pw, .ph) and
    shrink the panels until the figure fits max_w x max_h inches. The height gives way at
    _MIN_PANEL_H (many rows make a taller figure rather than unreadable panels); the width never
    does (a very wide image gets panels lower than _MIN_PANEL_H instead of a page metres wide)."""
    plan = layout(ph_in)
    for _ in range(iterations):
        over_w = plan.W - plan.cols * plan.pw
        over_h = plan.H - plan.rows * plan.ph
        fit_w = (max_w_in * dpi - over_w) / (plan.cols * plan.pw)
        fit_h = (max_h_in * dpi - over_h) / (plan.rows * plan.ph)
        if min(fit_w, fit_h) >= 1.0 - 1e-9:
            break
        floor = _MIN_PANEL_H if fit_w >= 1.0 else 0.15
        new = max(floor, ph_in * min(fit_w, fit_h) * 0.999)
        if new >= ph_in - 1e-3:
            break
        cand = layout(new)
        # stop when smaller panels no longer make the figure smaller (columns at their minimum width)
        if (cand.W if fit_w < fit_h else cand.H) >= (plan.W if fit_w < fit_h else plan.H) - 0.5:
            break
        ph_in, plan = new, cand
    return plan


class _Plan:
    """What a layout function decided: figure size, panel size and grid, plus anything it wants."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


# Measured text sizes, shared by all figures: plain numbers keyed by everything that decides them
# (text, size, weight, rotation, dpi, font file, hinting settings). Only touched under _MPL_LOCK.
_TEXT_SIZES: dict[tuple, tuple[float, float]] = {}
_TEXT_SIZES_MAX = 4096


class _Page:
    """One figure under construction: text measurement, the picture page and the vector artists.

    Coordinates are output pixels from the top-left corner. Only ever used under _MPL_LOCK.
    """

    def __init__(self, dpi: int, fmt: str) -> None:
        self.dpi = float(dpi)
        self.fmt = fmt
        self.k = _VECTOR_OVERSAMPLE if fmt in _VECTOR_FORMATS else 1
        self.fig = Figure(figsize=(2.0, 2.0), dpi=dpi)
        FigureCanvasAgg(self.fig)
        self._renderer = self.fig.canvas.get_renderer()
        self._probe = Text(0, 0, "", parse_math=False)
        self._probe.set_figure(self.fig)
        self._fonts: dict[tuple, tuple] = {}
        self.W = self.H = 0
        self.canvas: np.ndarray | None = None

    # ---- measurement -----------------------------------------------------------------------------

    def pt(self, points: float) -> float:
        return points * self.dpi / 72.0

    def size(self, text: str, fs: float, weight: str = "normal", rotation: float = 0.0) -> tuple[float, float]:
        """(width, height) in pixels of `text` as drawn (lines, rotation and all)."""
        if not text:
            return 0.0, 0.0
        font = self._fonts.get((fs, weight))
        if font is None:
            font = self._fonts[(fs, weight)] = (
                findfont(FontProperties(size=fs, weight=weight)), rcParams["text.hinting"],
                rcParams["text.hinting_factor"], rcParams["text.kerning_factor"])
        key = (text, fs, weight, rotation, self.dpi, font)
        got = _TEXT_SIZES.get(key)
        if got is None:
            p = self._probe
            p.set_text(text)
            p.set_fontsize(fs)
            p.set_fontweight(weight)
            p.set_rotation(rotation)
            bb = p.get_window_extent(self._renderer)
            got = (float(bb.width), float(bb.height))
            if len(_TEXT_SIZES) >= _TEXT_SIZES_MAX:
                _TEXT_SIZES.clear()
            _TEXT_SIZES[key] = got
        return got

    def wrap(self, text: str, max_w: float, fs: float, weight: str = "normal") -> str:
        """Greedy word wrap to max_w pixels; a word longer than a line is broken."""
        max_w = max(max_w, self.pt(fs) * 4)
        out: list[str] = []
        for para in str(text).split("\n"):
            if self.size(para, fs, weight)[0] <= max_w:  # most titles fit as they are
                out.append(para)
                continue
            line = ""
            for word in para.split():
                cand = f"{line} {word}" if line else word
                if self.size(cand, fs, weight)[0] <= max_w:
                    line = cand
                    continue
                if line:
                    out.append(line)
                line = word
                while len(line) > 1 and self.size(line, fs, weight)[0] > max_w:
                    lo, hi = 1, len(line) - 1  # the longest head that fits (at least one character)
                    while lo < hi:
                        mid = (lo + hi + 1) // 2
                        if self.size(line[:mid], fs, weight)[0] <= max_w:
                            lo = mid
                        else:
                            hi = mid - 1
                    out.append(line[:lo])
                    line = line[lo:]
            out.append(line)
        return "\n".join(out)

    # ---- drawing -----------------------------------------------------------------------------------

    def start(self, width: float, height: float) -> None:
        """Fix the figure size (whole pixels) and create the white picture page."""
        self.W, self.H = int(math.ceil(width)), int(math.ceil(height))
        # a quarter pixel more, so that Agg's int() of the canvas size gives exactly W x H
        w_in, h_in = (self.W + 0.25) / self.dpi, (self.H + 0.25) / self.dpi
        self.fig.set_size_inches(w_in, h_in, forward=False)
        self.T = Affine2D().scale(1.0 / self.dpi, -1.0 / self.dpi).translate(0.0, h_in) + self.fig.dpi_scale_trans
        # RGBA with the bottom row first, the order Agg draws images in: no copy when drawing
        self.canvas = np.full((self.H * self.k, self.W * self.k, 4), 255, np.uint8)

    def paste(self, x: int, y: int, img: np.ndarray) -> None:
        k = self.k
        x, y = int(round(x)), int(round(y))
        h, w = img.shape[:2]
        bottom = self.canvas.shape[0] - k * y
        self.canvas[bottom - h:bottom, k * x:k * x + w, :3] = img[::-1, :, :3]

    def text(self, x: float, y: float, text: str, fs: float, **kw: Any) -> Text:
        return self.fig.text(x, y, text, transform=self.T, fontsize=fs, parse_math=False, **kw)

    def rect(self, x: float, y: float, w: float, h: float, **kw: Any) -> None:
        self.fig.add_artist(Rectangle((x, y), w, h, transform=self.T, **kw))

    def lines(self, segments: Sequence[np.ndarray], color: Any, lw: float, zorder: float = 2) -> None:
        if segments:
            self.fig.add_artist(LineCollection(segments, colors=[color], linewidths=lw, transform=self.T,
                                               antialiaseds=True, capstyle="round", joinstyle="round",
                                               zorder=zorder))

    def save(self, path: str | Path, dpi: int) -> Path:
        if self.k == 1:
            self.fig.add_artist(_PageImage(self.fig, self.canvas))
        else:  # vector output: an Axes image embedded unsampled at the page's own resolution
            ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0), zorder=-1)
            ax.set_axis_off()
            ax.imshow(self.canvas[::-1], interpolation="none", extent=(0, self.W, self.H, 0), aspect="auto")
            ax.set_xlim(0, self.W + 0.25)
            ax.set_ylim(self.H + 0.25, 0)
        return _save(self.fig, path, dpi)


class _PageImage(FigureImage):
    """The picture page: Agg at the figure's dpi gets the pixels as they are (no resampling); any
    other renderer goes through FigureImage's own (resampling) path."""

    def __init__(self, fig: Figure, bottom_up_rgba: np.ndarray) -> None:
        super().__init__(fig, origin="upper", zorder=-1)
        self._bottom_up = bottom_up_rgba
        # the page itself is only validated (set_data) if the slow path needs it
        self.set_data(np.zeros((1, 1, 4), np.uint8))
        self._full = False

    def make_image(self, renderer: Any, magnification: float = 1.0, unsampled: bool = False):
        fig = self.figure
        h, w = self._bottom_up.shape[:2]
        if (magnification == 1.0 and not unsampled and renderer.dpi == fig.dpi
                and (int(renderer.height), int(renderer.width)) == (h, w)):
            return self._bottom_up, 0, 0, None
        if not self._full:
            self.set_data(self._bottom_up[::-1])
            self._full = True
        return super().make_image(renderer, magnification, unsampled)


_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION]
if hasattr(cv2, "IMWRITE_PNG_FILTER") and hasattr(cv2, "IMWRITE_PNG_FILTER_UP"):
    _PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]  # one filter: ~2x faster than adaptive


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    """Write the figure through a temporary file. PNG: matplotlib renders the raw RGBA page and
    OpenCV encodes it (fast zlib level, one row filter: about 2x faster than Pillow's encoder at
    any level, for files of about the same size); other formats: matplotlib writes them."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        if fmt == "png":
            buf = io.BytesIO()
            fig.savefig(buf, format="raw", dpi=dpi, facecolor="white")
            width = int(fig.bbox.width)
            rgba = np.frombuffer(buf.getbuffer(), np.uint8).reshape(-1, width, 4)
            ok, png = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR), _PNG_PARAMS)
            if not ok:
                raise RuntimeError(f"PNG encoding failed for {path}")
            tmp.write_bytes(png.tobytes())
        else:
            fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white")
    return path


def _fmt_of(path: str | Path) -> str:
    return Path(path).suffix.lstrip(".").lower() or "png"


# ---- pictures at the panel's pixel size -------------------------------------------------------------

def _fit(arr: np.ndarray, size: tuple[int, int], kind: str = "image") -> np.ndarray:
    """arr resized to size = (width, height) pixels for the page.

    image/float: area averaging when shrinking, bilinear when enlarging less than 3x, nearest from
    3x on; labels (colour-coded class maps): area averaging when shrinking, nearest when enlarging;
    mask: any-pooling when shrinking, so thin structures (roots a few pixels wide) survive as at
    least one pixel, nearest when enlarging.
    """
    h, w = arr.shape[:2]
    if (w, h) == tuple(size):
        return arr.astype(bool) if kind == "mask" else arr
    shrink = size[0] * size[1] <= w * h
    if kind == "mask":
        if shrink:
            return cv2.resize(arr.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        return cv2.resize(arr.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if kind == "float":
        arr = arr.astype(np.float32, copy=False)
    if shrink:
        return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    # like matplotlib's "antialiased" images: pixels stay sharp squares from 3x enlargement on
    blocky = kind == "labels" or min(size[0] / w, size[1] / h) >= 3.0
    return cv2.resize(arr, size, interpolation=cv2.INTER_NEAREST if blocky else cv2.INTER_LINEAR)


def _colormap_rgb(values: np.ndarray, cmap: str) -> np.ndarray:
    """HxWx3 uint8 colours of values in [0, 1] (vmin 0, vmax 1)."""
    return colormaps[cmap](np.clip(values, 0.0, 1.0), bytes=True)[..., :3]


def _dimmed(rgb: np.ndarray, factor: float) -> np.ndarray:
    return (rgb.astype(np.float32) * factor).astype(np.uint8)


def _contour_segments(mask: np.ndarray | None, x0: float, y0: float, k: int) -> list[np.ndarray]:
    """Outline (level 0.5, like contour()) of a page-resolution mask, in page pixels; [] when the mask
    is empty or full."""
    if mask is None or not mask.any() or mask.all():
        return []
    gen = contour_generator(z=mask.astype(np.float32), line_type="Separate")
    return [np.column_stack((x0 + (ln[:, 0] + 0.5) / k, y0 + (ln[:, 1] + 0.5) / k))
            for ln in gen.lines(0.5) if len(ln) > 1]


def _visible_colour(colour: Sequence[int]) -> tuple[float, float, float]:
    """The class colour for a contour on a photograph, white if the colour is too dark to see."""
    r, g, b = (float(v) / 255.0 for v in colour)
    if 0.299 * r + 0.587 * g + 0.114 * b < 0.25:
        return (1.0, 1.0, 1.0)
    return (r, g, b)


def _fmt_metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _class_index(cls: int | str, class_names: Sequence[str]) -> int:
    if isinstance(cls, (int, np.integer)):
        if not 0 <= int(cls) < len(class_names):
            raise ValueError(f"class index {cls} out of range 0..{len(class_names) - 1}")
        return int(cls)
    try:
        return list(class_names).index(cls)
    except ValueError:
        raise ValueError(f"unknown class {cls!r}; classes: {', '.join(class_names)}") from None


# ---- legends, notices, colour bars ------------------------------------------------------------------

_LegendItem = tuple  # (face colour, edge colour, edge width, label)


def _error_items(counts: Mapping[str, int] | None = None) -> list[_LegendItem]:
    def label(name: str, key: str) -> str:
        return name if counts is None else f"{name}: {counts[key]:,} px"

    return [
        (np.asarray(TP_COLOR) / 255, "none", 0.0, label("TP (correct)", "tp")),
        (np.asarray(FP_COLOR) / 255, "none", 0.0, label("FP (false alarm)", "fp")),
        (np.asarray(FN_COLOR) / 255, "none", 0.0, label("FN (missed)", "fn")),
    ]


def _class_items(classes: Sequence[int], class_names: Sequence[str],
                 colors: Sequence[Sequence[int]]) -> list[_LegendItem]:
    return [(np.asarray(colors[i], np.float64) / 255, "0.5", 0.5, class_names[i]) for i in classes]


def _legend_geometry(page: _Page, items: Sequence[_LegendItem], fs: float, ncols: int,
                     colspacing: float = 1.0) -> dict[str, Any]:
    """Sizes of a frameless legend like matplotlib's (handle length 1.2, column-major order)."""
    ncols = max(1, min(ncols, len(items)))
    nrows = math.ceil(len(items) / ncols)
    ncols = math.ceil(len(items) / nrows)
    em = page.pt(fs)
    handle_w, handle_h, text_pad, row_gap = 1.2 * em, 0.7 * em, 0.8 * em, 0.5 * em
    sizes = [page.size(it[3], fs) for it in items]
    row_h = max([handle_h] + [s[1] for s in sizes])
    col_w = [handle_w + text_pad + max(s[0] for s in sizes[j * nrows:(j + 1) * nrows]) for j in range(ncols)]
    width = sum(col_w) + (ncols - 1) * colspacing * em
    height = nrows * row_h + (nrows - 1) * row_gap
    return dict(ncols=ncols, nrows=nrows, col_w=col_w, row_h=row_h, row_gap=row_gap, handle_w=handle_w,
                handle_h=handle_h, text_pad=text_pad, colsp=colspacing * em, w=width, h=height, fs=fs)


def _fit_legend(page: _Page, items: Sequence[_LegendItem], fs: float, max_w: float, ncols: int,
                colspacing: float = 1.0) -> dict[str, Any]:
    """The legend with the most columns (at most ncols) that fits max_w pixels (one column otherwise)."""
    for n in range(max(1, ncols), 0, -1):
        geo = _legend_geometry(page, items, fs, n, colspacing)
        if geo["w"] <= max_w or n == 1:
            return geo
    raise AssertionError("unreachable")


def _draw_legend(page: _Page, items: Sequence[_LegendItem], geo: Mapping[str, Any], x: float, y: float) -> None:
    """Legend with its top-left corner at (x, y)."""
    nrows = geo["nrows"]
    for i, (face, edge, lw, label) in enumerate(items):
        j, r = divmod(i, nrows)
        cx = x + sum(geo["col_w"][:j]) + j * geo["colsp"]
        cy = y + r * (geo["row_h"] + geo["row_gap"]) + geo["row_h"] / 2
        page.rect(cx, cy - geo["handle_h"] / 2, geo["handle_w"], geo["handle_h"], facecolor=face,
                  edgecolor=edge, linewidth=lw)
        page.text(cx + geo["handle_w"] + geo["text_pad"], cy, label, geo["fs"], ha="left", va="center")


def _notice(page: _Page, box: tuple[float, float, float, float], text: str, fontsize: float = 10,
            room: float | None = None) -> None:
    """A centred, boxed message in a panel (never an empty panel). box: (x, y, w, h) of the panel;
    room: width available for the box when the column is wider than the panel."""
    x, y, w, h = box
    pad = 0.5 * page.pt(fontsize)
    width = max(w, room or 0.0) * 0.85 - 2 * pad
    page.text(x + w / 2, y + h / 2, page.wrap(text, width, fontsize), fontsize, ha="center",
              va="center", color="black", zorder=10, multialignment="center",
              bbox=dict(boxstyle="round,pad=0.5", facecolor="white", edgecolor="0.4", alpha=0.92))


_CBAR_TICKS = ((0.0, 0.2, 0.4, 0.6, 0.8, 1.0), (0.0, 0.5, 1.0), (0.0, 1.0))
_CBAR_LABEL = "importance (0–1)"


def _cbar_ticks(page: _Page, length: float, tick_fs: float, vertical: bool) -> tuple[float, ...]:
    """The densest tick set whose labels do not touch along a bar of this length."""
    w, h = page.size("0.0", tick_fs)
    need = 1.5 * (h if vertical else w)
    for ticks in _CBAR_TICKS:
        if length / (len(ticks) - 1) >= need:
            return ticks
    return _CBAR_TICKS[-1]


def _cbar_extent(page: _Page, tick_fs: float, label_fs: float, vertical: bool) -> float:
    """Room a colour bar's ticks, tick labels and label take beside (vertical) or below the bar."""
    tick, pad = page.pt(3.5), page.pt(3.5)
    lw, lh = page.size("0.0", tick_fs)
    label_h = page.size(_CBAR_LABEL, label_fs)[1]
    return tick + pad + (lw if vertical else lh) + pad + label_h


def _draw_cbar(page: _Page, x: float, y: float, w: float, h: float, cmap: str, tick_fs: float,
               label_fs: float, vertical: bool) -> None:
    """A 0-1 colour bar in the box (x, y, w, h); ticks and labels right of it (vertical) or below."""
    xi, yi = int(round(x)), int(round(y))
    wi, hi = max(1, int(round(w))), max(1, int(round(h)))
    k = page.k
    n = (hi if vertical else wi) * k
    ramp = colormaps[cmap](np.linspace(0.0, 1.0, n), bytes=True)[:, :3]
    if vertical:
        page.paste(xi, yi, np.broadcast_to(ramp[::-1, None, :], (n, wi * k, 3)))
    else:
        page.paste(xi, yi, np.broadcast_to(ramp[None, :, :], (hi * k, n, 3)))
    page.rect(xi, yi, wi, hi, facecolor="none", edgecolor="black", linewidth=0.8, zorder=2.5)
    tick, pad = page.pt(3.5), page.pt(3.5)
    segs = []
    for v in _cbar_ticks(page, hi if vertical else wi, tick_fs, vertical):
        label = f"{v:.1f}"
        if vertical:
            ty = yi + (1.0 - v) * hi
            segs.append(np.array([[xi + wi, ty], [xi + wi + tick, ty]]))
            page.text(xi + wi + tick + pad, ty, label, tick_fs, ha="left", va="center")
        else:
            tx = xi + v * wi
            segs.append(np.array([[tx, yi + hi], [tx, yi + hi + tick]]))
            page.text(tx, yi + hi + tick + pad, label, tick_fs, ha="center", va="top")
    page.lines(segs, "black", 0.8, zorder=2.5)
    if vertical:
        lx = xi + wi + tick + pad + page.size("0.0", tick_fs)[0] + pad
        page.text(lx, yi + hi / 2, _CBAR_LABEL, label_fs, ha="left", va="center", rotation=90)
    else:
        ly = yi + hi + tick + pad + page.size("0.0", tick_fs)[1] + pad
        page.text(xi + wi / 2, ly, _CBAR_LABEL, label_fs, ha="center", va="top")


# --------------------------------------------------------------------------------------------------
# single-image figures (error map, heatmap): a grid of panels with titles, legends below, an
# optional colour bar on the right
# --------------------------------------------------------------------------------------------------

def _panel_grid_layout(page: _Page, n: int, rows: int, cols: int, aspect: float, ph_in: float,
                       titles: Sequence[str], suptitle: str, legends: Mapping[int, Any] | None = None,
                       right_band: float = 0.0) -> _Plan:
    """Positions of n panels (row-major in a rows x cols grid) of panel height ph_in inches.

    titles: one per panel (wrapped to the column width); legends: {panel: callable(max_w) -> legend
    geometry}, drawn under the panel; right_band: pixels kept right of the grid (colour bar).
    """
    legends = legends or {}
    dpi = page.dpi
    pw, ph = _panel_px(ph_in, aspect, dpi)
    margin, gap = page.pt(_MARGIN_IN * 72), page.pt(_GAP_IN * 72)
    title_pad, row_gap = page.pt(_TITLE_PAD_PT), page.pt(_ROW_GAP_PT)
    cell = [divmod(i, cols) for i in range(n)]
    geos = {i: make(max(pw, page.pt(_MIN_COL_IN * 72))) for i, make in legends.items()}
    col_w = [max(float(pw), page.pt(_MIN_COL_IN * 72))] * cols
    for i, geo in geos.items():
        col_w[cell[i][1]] = max(col_w[cell[i][1]], math.ceil(geo["w"]))
    wrapped = [page.wrap(t, col_w[cell[i][1]], _TITLE_FS) for i, t in enumerate(titles)]
    title_h = [0.0] * rows
    below_h = [0.0] * rows
    for i, t in enumerate(wrapped):
        title_h[cell[i][0]] = max(title_h[cell[i][0]], page.size(t, _TITLE_FS)[1])
    for i, geo in geos.items():
        below_h[cell[i][0]] = max(below_h[cell[i][0]], page.pt(3) + geo["h"])
    grid_w = sum(col_w) + (cols - 1) * gap
    content_w = 2 * margin + grid_w + right_band
    width = math.ceil(max(content_w, min(page.size(suptitle, _SUPTITLE_FS)[0], page.pt(_SUPTITLE_W_IN * 72))
                          + 2 * margin))
    left = margin + (width - content_w) / 2
    sup = page.wrap(suptitle, width - 2 * margin, _SUPTITLE_FS)
    sup_h = page.size(sup, _SUPTITLE_FS)[1]
    col_x = [int(round(left + sum(col_w[:c]) + c * gap)) for c in range(cols)]
    sup_bottom = margin + sup_h + page.pt(4)
    y = sup_bottom
    row_y = []
    for r in range(rows):
        y += math.ceil(title_h[r] + title_pad) if title_h[r] else 0
        row_y.append(int(math.ceil(y)))
        y = row_y[-1] + ph + below_h[r] + (row_gap if r < rows - 1 else 0)
    height = math.ceil(y + margin)
    boxes = []
    for i in range(n):
        r, c = cell[i]
        boxes.append((int(round(col_x[c] + (col_w[c] - pw) / 2)), row_y[r], pw, ph))
    return _Plan(W=width, H=height, rows=rows, cols=cols, pw=pw, ph=ph, boxes=boxes, titles=wrapped,
                 sup=sup, sup_h=sup_h, sup_bottom=sup_bottom, margin=margin, grid_right=left + grid_w,
                 geos=geos, title_pad=title_pad, col_w=[col_w[cell[i][1]] for i in range(n)])


def _draw_titles(page: _Page, plan: _Plan) -> None:
    page.text(plan.W / 2, plan.margin, plan.sup, _SUPTITLE_FS, ha="center", va="top")
    for (x, y, w, _), t in zip(plan.boxes, plan.titles):
        if t:
            page.text(x + w / 2, y - plan.title_pad, t, _TITLE_FS, ha="center", va="bottom",
                      multialignment="center")


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------

def save_error_figure(path: str | Path, rgb: np.ndarray, gt: np.ndarray | None, pred: np.ndarray,
                      class_idx: int | str, class_names: Sequence[str], colors: Sequence[Sequence[int]],
                      title: str | None = None, *, alpha: float = 0.8, dpi: int = DEFAULT_DPI) -> Path:
    """Input | ground truth | prediction | TP/FP/FN overlay of one class, with counts, IoU and Dice.

    Counts and scores are computed at full resolution; the pictures are resized for the page.
    If the class is in neither gt nor pred, the overlay panel says so. If gt is None the ground-truth
    panel says so and the last panel shows the predicted region of the class.
    """
    rgb = _as_rgb(rgb)
    hw = rgb.shape[:2]
    gt = _as_ids(gt, hw, "gt")
    pred = _as_ids(pred, hw, "pred")
    class_idx = _class_index(class_idx, class_names)
    cname = class_names[class_idx]

    if gt is not None:
        counts = error_counts(gt, pred, class_idx)
        iou, dice = iou_dice(counts)
        overlay = error_overlay(rgb, gt, pred, class_idx, alpha=alpha)
    else:
        counts, iou, dice = None, None, None
        overlay = _tint(rgb, pred == class_idx, colors[class_idx], alpha=alpha)
    absent = counts is not None and iou is None
    present = set(np.unique(pred).tolist()) | (set(np.unique(gt).tolist()) if gt is not None else set())
    legend_classes = [i for i in sorted(present) if 0 <= i < len(class_names)]
    gt_col = colorize_classes(gt, colors) if gt is not None else None
    pred_col = colorize_classes(pred, colors)
    pred_mask = (pred == class_idx) if counts is None else None

    if counts is None:
        ov_title = f"predicted '{cname}'\n(no ground truth)"
    else:
        ov_title = f"errors for '{cname}'\nIoU {_fmt_metric(iou)} · Dice {_fmt_metric(dice)}"
    titles = ["input image", "ground truth", "prediction", ov_title]
    suptitle = title if title is not None else f"Segmentation errors for class '{cname}'"
    class_items = _class_items(legend_classes, class_names, colors)
    error_items = _error_items(counts) if counts is not None else []

    h, w = hw
    aspect = w / h
    rows, cols, ph_in = _choose_grid(4, aspect)

    with _MPL_LOCK:
        page = _Page(dpi, _fmt_of(path))
        legends: dict[int, Any] = {}
        if class_items:
            legends[2] = lambda pw: _fit_legend(page, class_items, _LEGEND_FS, pw,
                                                2 if pw < 3.2 * page.dpi else 3)
        if error_items:
            legends[3] = lambda pw: _legend_geometry(page, error_items, _LEGEND_FS, 1)
        plan = _solve_panel_height(
            lambda p: _panel_grid_layout(page, 4, rows, cols, aspect, p, titles, suptitle, legends),
            ph_in, _MAX_FIG_W, _MAX_FIG_H + 1.5, page.dpi)
        page.start(plan.W, plan.H)
        k = page.k
        size = (plan.pw * k, plan.ph * k)
        b_in, b_gt, b_pr, b_ov = plan.boxes
        show_rgb = _fit(rgb, size)
        page.paste(b_in[0], b_in[1], show_rgb)
        if gt_col is not None:
            page.paste(b_gt[0], b_gt[1], _fit(gt_col, size, "labels"))
        else:
            page.paste(b_gt[0], b_gt[1], _dimmed(show_rgb, 0.35))
            _notice(page, b_gt, NO_GT_TEXT, room=plan.col_w[1])
        page.paste(b_pr[0], b_pr[1], _fit(pred_col, size, "labels"))
        page.paste(b_ov[0], b_ov[1], _fit(overlay, size))
        if counts is None:
            page.lines(_contour_segments(_fit(pred_mask, size, "mask"), b_ov[0], b_ov[1], k),
                       _visible_colour(colors[class_idx]), 0.9)
        elif absent:
            _notice(page, b_ov, ABSENT_TEXT, room=plan.col_w[3])
        _draw_titles(page, plan)
        for i, items in ((2, class_items), (3, error_items)):
            if i in plan.geos:
                geo = plan.geos[i]
                x, y, bw, bh = plan.boxes[i]
                lx = min(max(x + bw / 2 - geo["w"] / 2, plan.margin), plan.W - plan.margin - geo["w"])
                _draw_legend(page, items, geo, lx, y + bh + page.pt(3))
        return page.save(path, dpi)


def save_heatmap_figure(path: str | Path, rgb: np.ndarray, cam: np.ndarray | None, class_name: str,
                        method: str, note: str | None = None, region_contour: np.ndarray | None = None, *,
                        title: str | None = None, cmap: str = DEFAULT_CMAP, alpha: float = 0.5,
                        dpi: int = DEFAULT_DPI) -> Path:
    """Input | heatmap with colour bar | heatmap over the image.

    cam None: `note` (or "no explanation") replaces the heatmap in the last two panels; with a cam,
    a note is shown as a caption on the overlay. region_contour: HxW bool mask drawn as a thin white
    contour on the overlay. A cam with NaN or infinite values raises ValueError.
    """
    rgb = _as_rgb(rgb)
    hw = rgb.shape[:2]
    cam = _check_cam(cam, hw)
    colormaps[cmap]  # unknown colour maps fail here, before anything is drawn
    region = None
    if region_contour is not None:
        region = np.asarray(region_contour)
        if region.shape != hw:
            raise ValueError(f"region_contour has shape {region.shape} but the image is {hw}")
        region = region.astype(bool)
    cam_max = float(cam.max()) if cam is not None else None

    if cam is not None:
        titles = ["input image", f"{method} heatmap (max {cam_max:.2f})", f"{method} over the image"]
    else:
        titles = ["input image", f"{method} heatmap", f"{method} over the image"]
    suptitle = title if title is not None else f"{method} explanation of class '{class_name}'"
    h, w = hw
    aspect = w / h
    rows, cols, ph_in = _choose_grid(3, aspect)
    tick_fs, label_fs = 8.0, 8.5

    with _MPL_LOCK:
        page = _Page(dpi, _fmt_of(path))
        cbar_gap = page.pt(7)
        cbar_w = page.pt(9)
        right = cbar_gap + cbar_w + _cbar_extent(page, tick_fs, label_fs, vertical=True)
        plan = _solve_panel_height(
            lambda p: _panel_grid_layout(page, 3, rows, cols, aspect, p, titles, suptitle, right_band=right),
            ph_in, _MAX_FIG_W, _MAX_FIG_H + 1.5, page.dpi)
        b_in, b_hm, b_ov = plan.boxes
        room = plan.col_w[1]
        # colour bar right of the grid, 85% of the height spanned by the heatmap panels, long enough for its label
        top, bottom = min(b_hm[1], b_ov[1]), max(b_hm[1], b_ov[1]) + plan.ph
        length = max(0.85 * (bottom - top), page.size(_CBAR_LABEL, label_fs)[0] + page.pt(6))
        bar_y = max(plan.sup_bottom, (top + bottom - length) / 2)
        page.start(plan.W, max(plan.H, math.ceil(bar_y + length + plan.margin)))
        k = page.k
        size = (plan.pw * k, plan.ph * k)
        show_rgb = _fit(rgb, size)
        page.paste(b_in[0], b_in[1], show_rgb)
        if cam is not None:
            show_cam = _fit(cam, size, "float")
            page.paste(b_hm[0], b_hm[1], _colormap_rgb(show_cam, cmap))
            page.paste(b_ov[0], b_ov[1], heatmap_overlay(show_rgb, show_cam, alpha=alpha, cmap=cmap))
            if cam_max <= 0.0:
                _notice(page, b_hm, "the map is zero everywhere", fontsize=9, room=room)
            if note:
                # a caption in the lower left corner; centred when the column is wider than the panel
                x, y, bw, bh = b_ov
                pad = 0.3 * page.pt(8)
                wide = room > bw * 1.05
                text = page.wrap(note, (0.95 * room if wide else 0.95 * bw) - 2 * pad, 8)
                page.text(x + bw / 2 if wide else x + 0.02 * bw + pad, y + bh - 0.01 * bh - pad, text, 8,
                          ha="center" if wide else "left", va="bottom", color="white", zorder=10,
                          bbox=dict(boxstyle="round,pad=0.3", facecolor="black", alpha=0.6, edgecolor="none"))
        else:
            text = note or NO_MAP_TEXT
            page.paste(b_hm[0], b_hm[1], np.full((size[1], size[0], 3), round(0.92 * 255), np.uint8))
            _notice(page, b_hm, text, room=room)
            page.paste(b_ov[0], b_ov[1], _dimmed(show_rgb, 0.45))
            _notice(page, b_ov, text, room=room)
        if region is not None:
            page.lines(_contour_segments(_fit(region, size, "mask"), b_ov[0], b_ov[1], k), "white", 0.8)
        _draw_cbar(page, plan.grid_right + cbar_gap, bar_y, cbar_w, length, cmap,
                   tick_fs, label_fs, vertical=True)
        _draw_titles(page, plan)
        return page.save(path, dpi)


def _method_maps(value: Any, n_classes: int, hw: tuple[int, int], method: str) -> list[np.ndarray | None]:
    """Normalise one entry of `maps`: CxHxW array, a length-C sequence of HxW arrays / None, or None."""
    if value is None:
        return [None] * n_classes
    if isinstance(value, np.ndarray):
        if value.ndim != 3 or value.shape[0] != n_classes or value.shape[1:] != tuple(hw):
            raise ValueError(f"maps[{method!r}] must be {n_classes}x{hw[0]}x{hw[1]}, got shape {value.shape}")
        return [_check_cam(value[i], hw, f"maps[{method!r}][{i}]") for i in range(n_classes)]
    if isinstance(value, (Mapping, str, bytes)):
        raise ValueError(f"maps[{method!r}] must be a CxHxW array or a list with one map (or None) per class")
    value = list(value)
    if len(value) != n_classes:
        raise ValueError(f"maps[{method!r}] has {len(value)} entries for {n_classes} classes")
    return [_check_cam(v, hw, f"maps[{method!r}][{i}]") for i, v in enumerate(value)]


def _lookup_note(notes: Mapping[Any, Any] | None, method: str, cname: str) -> str | None:
    if not notes:
        return None
    if (method, cname) in notes:
        return str(notes[(method, cname)])
    per_method = notes.get(method)
    if isinstance(per_method, Mapping):
        value = per_method.get(cname)
        return None if value is None else str(value)
    value = notes.get(cname)
    return value if isinstance(value, str) else None


def save_comparison_figure(path: str | Path, rgb: np.ndarray, gt: np.ndarray | None, pred: np.ndarray,
                           maps: Mapping[str, Any], class_names: Sequence[str], colors: Sequence[Sequence[int]],
                           classes_to_show: Sequence[int | str] | None = None,
                           notes: Mapping[Any, Any] | None = None, *, title: str | None = None,
                           cmap: str = DEFAULT_CMAP, alpha: float = 0.5, contour_on_maps: bool = True,
                           dpi: int = DEFAULT_DPI) -> Path:
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
    gt = _as_ids(gt, hw, "gt")
    pred = _as_ids(pred, hw, "pred")
    n_classes = len(class_names)
    if classes_to_show is None:
        show = list(range(n_classes))
    else:
        show = [_class_index(c, class_names) for c in classes_to_show]
    if not show:
        raise ValueError("classes_to_show is empty")
    methods = [str(m) for m in maps.keys()]
    per_method = {str(m): _method_maps(v, n_classes, hw, str(m)) for m, v in maps.items()}
    colormaps[cmap]  # unknown colour maps fail here, before anything is drawn

    h, w = hw
    aspect = w / h
    nrows, ncols = len(show), 2 + len(methods)
    extra_w, extra_h = 0.6, 1.0 + 0.25 * nrows
    ph0 = _panel_height(aspect, nrows, ncols, _MAX_FIG_W - extra_w, _MAX_GRID_H - extra_h, preferred=4.2)
    fs = float(np.clip(ph0 * aspect * 3.2, 7.0, 10.0))  # font size follows the panel width

    # per-row data at full resolution (scores, overlays); resized for the page under the lock
    rows_data = []
    for ci in show:
        cname = class_names[ci]
        p = pred == ci
        if gt is not None:
            g = gt == ci
            counts = error_counts(gt, pred, ci)
            iou, dice = iou_dice(counts)
            err = error_overlay(rgb, gt, pred, ci, alpha=0.8)
        else:
            g, counts, iou, dice = None, None, None, None
            err = _tint(rgb, p, colors[ci], alpha=0.8)
        cells = []
        for m in methods:
            cam = per_method[m][ci]
            cells.append((cam, _lookup_note(notes, m, cname) or NO_MAP_TEXT if cam is None else None))
        if counts is None:
            caption = "no ground truth"
        elif iou is None:
            caption = "IoU n/a · Dice n/a"
        else:
            caption = f"IoU {iou:.3f} · Dice {dice:.3f}"
        rows_data.append(dict(ci=ci, cname=cname, g_any=bool(g.any()) if g is not None else None, g=g, p=p,
                              counts=counts, iou=iou, err=err, cells=cells, caption=caption))
    gt_title = "image + ground truth" if gt is not None else "image (no ground truth)"
    pred_title = "prediction: TP/FP/FN" if gt is not None else "prediction"
    col_titles = [gt_title, pred_title] + methods
    suptitle = title if title is not None else "Explanations per class"
    legend_items = _error_items() if gt is not None else []
    tick_fs, label_fs = fs * 0.9, fs

    with _MPL_LOCK:
        page = _Page(dpi, _fmt_of(path))
        margin, gap = page.pt(_MARGIN_IN * 72), page.pt(_GAP_IN * 72)
        title_pad, row_gap, cap_pad = page.pt(4), page.pt(5), page.pt(2)
        aspect_bar = max(12, 10 * len(methods))

        def layout(ph_in: float) -> _Plan:
            pw, ph = _panel_px(ph_in, aspect, page.dpi)
            # row labels: rotated along the panel, or horizontal when the panel is too low for them
            labels = []
            for row in rows_data:
                if page.size(row["cname"], fs + 2, "bold")[0] <= ph:
                    labels.append((row["cname"], 90))
                else:
                    labels.append((page.wrap(row["cname"], page.pt(1.3 * 72), fs + 1, "bold"), 0))
            label_w = max(page.size(t, fs + 2 if rot else fs + 1, "bold", rot)[0] for t, rot in labels)
            # columns: the panel, or wider for captions and titles of narrow (tall) images
            cw = max(pw, page.pt(_MIN_COL_IN * 72), max(page.size(r["caption"], fs)[0] for r in rows_data))
            titles = [page.wrap(t, cw + 0.8 * gap, fs + 1) for t in col_titles]
            title_h = max(page.size(t, fs + 1)[1] for t in titles)
            captions = [page.wrap(r["caption"], cw + gap, fs) for r in rows_data]
            cap_h = [cap_pad + page.size(c, fs)[1] for c in captions]
            x0 = margin + label_w + max(0.04 * pw, page.pt(3))
            content_w = x0 + ncols * cw + (ncols - 1) * gap + margin
            width = math.ceil(max(content_w, min(page.size(suptitle, fs + 3)[0], page.pt(_SUPTITLE_W_IN * 72))
                                  + 2 * margin))
            x0 += (width - content_w) / 2
            col_x = [int(round(x0 + c * (cw + gap) + (cw - pw) / 2)) for c in range(ncols)]  # panel x
            sup = page.wrap(suptitle, width - 2 * margin, fs + 3)
            y = margin + page.size(sup, fs + 3)[1] + page.pt(3) + title_h + title_pad
            row_y = []
            for r in range(nrows):
                row_y.append(int(math.ceil(y)))
                y = row_y[-1] + ph + cap_h[r] + (row_gap if r < nrows - 1 else 0)
            bottom_y = y + page.pt(4)
            # bottom band: TP/FP/FN legend under column 1, colour bar under the method columns
            geo = _legend_geometry(page, legend_items, fs * 0.9, 1, 2.0) if legend_items else None
            bar = None
            band = geo["h"] if geo else 0.0
            lx = 0.0
            centre1 = col_x[1] + pw / 2
            if methods:
                span_x0 = col_x[2] - (cw - pw) / 2
                span_x1 = col_x[-1] + pw + (cw - pw) / 2
                length = 0.9 * (span_x1 - span_x0)
                thick = min(max(page.pt(6), length / aspect_bar), page.pt(14))
                bx = span_x0 + (span_x1 - span_x0 - length) / 2
                bar_h = thick + _cbar_extent(page, tick_fs, label_fs, vertical=False)
                by = bottom_y
                if geo:
                    lx = min(centre1 - geo["w"] / 2, bx - gap - geo["w"])
                    if lx < margin:  # no room beside the legend: the colour bar goes below it
                        lx = max(margin, centre1 - geo["w"] / 2)
                        by = bottom_y + geo["h"] + page.pt(6)
                bar = (bx, by, length, thick)
                band = max(band, by - bottom_y + bar_h)
            elif geo:
                lx = max(margin, centre1 - geo["w"] / 2)
            if geo:
                width = max(width, math.ceil(lx + geo["w"] + margin))
            height = math.ceil(bottom_y + band + margin)
            return _Plan(W=width, H=height, rows=nrows, cols=ncols, pw=pw, ph=ph, cw=cw, col_x=col_x, row_y=row_y,
                         labels=labels, titles=titles, captions=captions, sup=sup, geo=geo, legend_x=lx,
                         legend_y=bottom_y, bar=bar)

        plan = _solve_panel_height(layout, ph0, _MAX_FIG_W, _MAX_GRID_H, page.dpi)
        page.start(plan.W, plan.H)
        k = page.k
        pw, ph, cw = plan.pw, plan.ph, plan.cw
        size = (pw * k, ph * k)
        show_rgb = _fit(rgb, size)
        dimmed = _dimmed(show_rgb, 0.45)
        for r, row in enumerate(rows_data):
            y = plan.row_y[r]
            x0, x1 = plan.col_x[0], plan.col_x[1]
            ci = row["ci"]
            page.paste(x0, y, show_rgb)
            g = _fit(row["g"], size, "mask") if row["g"] is not None else None
            p = _fit(row["p"], size, "mask")
            if g is not None:
                page.lines(_contour_segments(g, x0, y, k), _visible_colour(colors[ci]), 1.0)
                if not row["g_any"]:
                    page.text(x0 + pw / 2, y + ph - 0.02 * ph - page.pt(0.25 * fs * 0.85), "not in ground truth",
                              fs * 0.85, ha="center", va="bottom", color="white", zorder=10,
                              bbox=dict(boxstyle="round,pad=0.25", facecolor="black", alpha=0.55, edgecolor="none"))
            label, rot = plan.labels[r]
            page.text(x0 - (cw - pw) / 2 - max(0.04 * pw, page.pt(3)), y + ph / 2, label, fs + 2 if rot else fs + 1,
                      ha="right", va="center", rotation=rot, fontweight="bold", multialignment="center")
            page.paste(x1, y, _fit(row["err"], size))
            if row["counts"] is None:
                page.lines(_contour_segments(p, x1, y, k), _visible_colour(colors[ci]), 0.8)
            elif row["iou"] is None:
                _notice(page, (x1, y, pw, ph), ABSENT_TEXT, fontsize=fs, room=cw)
            page.text(x1 + pw / 2, y + ph + cap_pad, plan.captions[r], fs, ha="center", va="top",
                      multialignment="center")
            outline = _contour_segments(g if g is not None else p, 0, 0, k) if contour_on_maps else []
            for c, (cam, text) in enumerate(row["cells"]):
                xc = plan.col_x[2 + c]
                if cam is None:
                    page.paste(xc, y, dimmed)
                    _notice(page, (xc, y, pw, ph), text, fontsize=fs * 0.9, room=cw)
                else:
                    page.paste(xc, y, heatmap_overlay(show_rgb, _fit(cam, size, "float"), alpha=alpha, cmap=cmap))
                    page.lines([seg + (xc, y) for seg in outline], "white", 0.7)
        page.text(plan.W / 2, margin, plan.sup, fs + 3, ha="center", va="top")
        for c, t in enumerate(plan.titles):
            page.text(plan.col_x[c] + pw / 2, plan.row_y[0] - title_pad, t, fs + 1, ha="center", va="bottom",
                      multialignment="center")
        if plan.geo:
            _draw_legend(page, legend_items, plan.geo, plan.legend_x, plan.legend_y)
        if plan.bar:
            _draw_cbar(page, *plan.bar, cmap, tick_fs, label_fs, vertical=False)
        return page.save(path, dpi)
