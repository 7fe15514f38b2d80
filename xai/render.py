"""Publication figures: TP/FP/FN error maps, CAM heatmaps and a class-by-method comparison grid.

Every input is already on the ORIGINAL photograph (padding cropped by the caller):
rgb HxWx3 uint8, gt HxW uint8 class ids (or None when unknown), pred HxW uint8 class ids,
cam HxW float32 in [0, 1].

Figures are drawn with `matplotlib.figure.Figure` + `FigureCanvasAgg` (never pyplot, so no global
figure state), and drawing is serialised by one module lock because matplotlib's own caches are not
documented as thread-safe: calling the `save_*` functions from worker threads is safe. Every file is
written through `xai.io.atomic_path`, so a killed run never leaves a half-written figure behind.
The format follows the suffix of `path` (.png, .pdf, .svg, ...).
"""
from __future__ import annotations

import math
import textwrap
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation

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
# layout helpers
# --------------------------------------------------------------------------------------------------

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
        area = ph * ph * aspect
        score = area * (n / (rows * cols)) ** 2 / (1.0 + 0.35 * (rows - 1))
        if best is None or score > best[0] + 1e-9:
            best = (score, rows, cols, ph)
    _, rows, cols, ph = best
    return rows, cols, ph


def _new_figure(width: float, height: float, dpi: int) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03, wspace=0.02, hspace=0.02)
    return fig


def _fit_figure(fig: Figure, grid: np.ndarray, aspect: float, panel_h: float, max_w: float, max_h: float,
                iterations: int = 3) -> None:
    """Size the figure so that its image panels are `panel_h` inches tall (less if the figure would
    exceed max_w x max_h) and fill their layout boxes, whatever room titles, legends and colour bars take.

    Panels keep the image aspect ratio, so a box wider or taller than the image would leave white gaps.
    This measures what the constrained layout leaves around the panels and resizes the figure to fit.
    grid: 2-D array (rows x cols) of the panel axes; the first row and column must be visible.
    """
    rows, cols = grid.shape
    for _ in range(iterations):
        fig.get_layout_engine().execute(fig)
        fw, fh = fig.get_size_inches()
        bw = min(ax.get_position(original=True).width for ax in grid[0] if ax.get_visible()) * fw
        bh = min(ax.get_position(original=True).height for ax in grid[:, 0] if ax.get_visible()) * fh
        over_w, over_h = fw - cols * bw, fh - rows * bh
        ph = min(panel_h, (max_w - over_w) / (cols * aspect), (max_h - over_h) / rows)
        ph = max(ph, _MIN_PANEL_H)
        new_w, new_h = over_w + cols * ph * aspect, over_h + rows * ph
        if abs(new_w - fw) < 0.02 and abs(new_h - fh) < 0.02:
            break
        fig.set_size_inches(new_w, new_h, forward=False)


def _display_scale(hw: tuple[int, int], panel_h_in: float, dpi: int, oversample: float = 1.5) -> float:
    """Factor (<= 1) that brings an image down to about `oversample` times its size on the page."""
    return min(1.0, panel_h_in * dpi * oversample / hw[0])


def _shrink(arr: np.ndarray | None, scale: float, kind: str = "image") -> np.ndarray | None:
    """Downsample for display. image/float: area averaging; mask: any-pooling, so thin structures
    (roots a few pixels wide) survive as at least one display pixel."""
    if arr is None or scale >= 1.0:
        return arr
    h, w = arr.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if kind == "mask":
        return cv2.resize(arr.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    if kind == "float":
        return cv2.resize(arr.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)


def _clear_axes(ax: Any) -> None:
    """Axes off (no ticks, no frame); labels are drawn with _row_label / _below."""
    ax.set_axis_off()


def _row_label(ax: Any, text: str, fontsize: float) -> None:
    """A row label left of the panel, counted by the constrained layout (unlike a hidden y label)."""
    ax.text(-0.04, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center",
            fontsize=fontsize, fontweight="bold")


def _below(ax: Any, text: str, fontsize: float) -> None:
    """A caption just under the panel."""
    ax.text(0.5, -0.015, text, transform=ax.transAxes, ha="center", va="top", fontsize=fontsize)


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white")
    return path


def _wrap(text: str, panel_w_in: float, fontsize: float) -> str:
    chars = max(12, int(panel_w_in * 72.0 / (fontsize * 0.6)))
    return "\n".join(textwrap.fill(part, chars) for part in str(text).splitlines() or [""])


def _notice(ax: Any, text: str, panel_w_in: float, fontsize: float = 10) -> None:
    """A centred, boxed message in a panel (never an empty panel)."""
    ax.text(0.5, 0.5, _wrap(text, panel_w_in * 0.85, fontsize), transform=ax.transAxes, ha="center",
            va="center", fontsize=fontsize, color="black", wrap=False, zorder=10,
            bbox=dict(boxstyle="round,pad=0.5", facecolor="white", edgecolor="0.4", alpha=0.92))


def _contour(ax: Any, mask: np.ndarray, color: Any, lw: float = 0.9) -> None:
    if mask is None or not mask.any() or mask.all():
        return
    ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=lw, antialiased=True)


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


def _error_legend(counts: Mapping[str, int] | None = None) -> list[Patch]:
    def label(name: str, key: str) -> str:
        return name if counts is None else f"{name}: {counts[key]:,} px"

    return [
        Patch(facecolor=np.asarray(TP_COLOR) / 255, edgecolor="none", label=label("TP (correct)", "tp")),
        Patch(facecolor=np.asarray(FP_COLOR) / 255, edgecolor="none", label=label("FP (false alarm)", "fp")),
        Patch(facecolor=np.asarray(FN_COLOR) / 255, edgecolor="none", label=label("FN (missed)", "fn")),
    ]


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------

def save_error_figure(path: str | Path, rgb: np.ndarray, gt: np.ndarray | None, pred: np.ndarray,
                      class_idx: int | str, class_names: Sequence[str], colors: Sequence[Sequence[int]],
                      title: str | None = None, *, alpha: float = 0.8, dpi: int = DEFAULT_DPI) -> Path:
    """Input | ground truth | prediction | TP/FP/FN overlay of one class, with counts, IoU and Dice.

    Counts and scores are computed at full resolution; the pictures are downsampled for the page.
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

    h, w = hw
    aspect = w / h
    rows, cols, ph = _choose_grid(4, aspect)
    pw = ph * aspect
    scale = _display_scale(hw, ph, dpi)
    show_rgb = _shrink(rgb, scale)
    gt_col = _shrink(colorize_classes(gt, colors), scale) if gt is not None else None
    pred_col = _shrink(colorize_classes(pred, colors), scale)
    overlay = _shrink(overlay, scale)
    pred_mask = _shrink(pred == class_idx, scale, "mask") if counts is None else None
    fig_w, fig_h = cols * pw + 0.3, rows * ph + 1.6

    with _MPL_LOCK:
        fig = _new_figure(fig_w, fig_h, dpi)
        grid = fig.subplots(rows, cols, squeeze=False)
        axes = grid.ravel()
        for ax in axes:
            _clear_axes(ax)
        for ax in axes[4:]:
            ax.set_visible(False)
        ax_in, ax_gt, ax_pr, ax_ov = axes[:4]
        ax_in.imshow(show_rgb)
        ax_in.set_title("input image", fontsize=10)
        if gt_col is not None:
            ax_gt.imshow(gt_col)
        else:
            ax_gt.imshow((show_rgb.astype(np.float32) * 0.35).astype(np.uint8))
            _notice(ax_gt, NO_GT_TEXT, pw)
        ax_gt.set_title("ground truth", fontsize=10)
        ax_pr.imshow(pred_col)
        ax_pr.set_title("prediction", fontsize=10)
        ax_ov.imshow(overlay)
        if counts is None:
            ax_ov.set_title(f"predicted '{cname}'\n(no ground truth)", fontsize=10)
            _contour(ax_ov, pred_mask, _visible_colour(colors[class_idx]))
        elif absent:
            ax_ov.set_title(f"errors for '{cname}'\nIoU n/a · Dice n/a", fontsize=10)
            _notice(ax_ov, ABSENT_TEXT, pw)
        else:
            ax_ov.set_title(f"errors for '{cname}'\nIoU {_fmt_metric(iou)} · Dice {_fmt_metric(dice)}", fontsize=10)

        handles = [Patch(facecolor=np.asarray(colors[i]) / 255, edgecolor="0.5", linewidth=0.5,
                         label=class_names[i]) for i in legend_classes]
        if handles:
            ax_pr.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01),
                         ncols=2 if pw < 3.2 else 3, fontsize=8.5, frameon=False, handlelength=1.2,
                         columnspacing=1.0, borderaxespad=0.2)
        if counts is not None:
            ax_ov.legend(handles=_error_legend(counts), loc="upper center", bbox_to_anchor=(0.5, -0.01), ncols=1,
                         fontsize=8.5, frameon=False, handlelength=1.2, borderaxespad=0.2)
        fig.suptitle(title if title is not None else f"Segmentation errors for class '{cname}'", fontsize=12)
        _fit_figure(fig, grid, aspect, ph, _MAX_FIG_W, _MAX_FIG_H + 1.5)
        return _save(fig, path, dpi)


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
    region = None
    if region_contour is not None:
        region = np.asarray(region_contour)
        if region.shape != hw:
            raise ValueError(f"region_contour has shape {region.shape} but the image is {hw}")
        region = region.astype(bool)
    cam_max = float(cam.max()) if cam is not None else None

    h, w = hw
    aspect = w / h
    rows, cols, ph = _choose_grid(3, aspect)
    pw = ph * aspect
    scale = _display_scale(hw, ph, dpi)
    show_rgb = _shrink(rgb, scale)
    show_cam = _shrink(cam, scale, "float")
    overlay = heatmap_overlay(show_rgb, show_cam, alpha=alpha, cmap=cmap) if cam is not None else None
    region = _shrink(region, scale, "mask")
    fig_w, fig_h = cols * pw + 1.0, rows * ph + 0.9

    with _MPL_LOCK:
        fig = _new_figure(fig_w, fig_h, dpi)
        grid = fig.subplots(rows, cols, squeeze=False)
        axes = grid.ravel()
        for ax in axes:
            _clear_axes(ax)
        for ax in axes[3:]:
            ax.set_visible(False)
        ax_in, ax_hm, ax_ov = axes[:3]
        ax_in.imshow(show_rgb)
        ax_in.set_title("input image", fontsize=10)
        norm = Normalize(vmin=0.0, vmax=1.0)
        if cam is not None:
            im = ax_hm.imshow(show_cam, cmap=cmap, norm=norm)
            ax_hm.set_title(f"{method} heatmap (max {cam_max:.2f})", fontsize=10)
            ax_ov.imshow(overlay)
            ax_ov.set_title(f"{method} over the image", fontsize=10)
            if cam_max <= 0.0:
                _notice(ax_hm, "the map is zero everywhere", pw, fontsize=9)
            if note:
                ax_ov.text(0.02, 0.01, _wrap(note, pw * 0.95, 8), transform=ax_ov.transAxes, ha="left",
                           va="bottom", fontsize=8, color="white",
                           bbox=dict(boxstyle="round,pad=0.3", facecolor="black", alpha=0.6, edgecolor="none"))
        else:
            im = ScalarMappable(norm=norm, cmap=cmap)
            text = note or NO_MAP_TEXT
            ax_hm.imshow(np.full(show_rgb.shape[:2], 0.92, np.float32), cmap="gray", vmin=0, vmax=1)
            _notice(ax_hm, text, pw)
            ax_hm.set_title(f"{method} heatmap", fontsize=10)
            ax_ov.imshow((show_rgb.astype(np.float32) * 0.45).astype(np.uint8))
            _notice(ax_ov, text, pw)
            ax_ov.set_title(f"{method} over the image", fontsize=10)
        if region is not None:
            _contour(ax_ov, region, "white", lw=0.8)
        cbar = fig.colorbar(im, ax=[ax_hm, ax_ov], fraction=0.04, pad=0.01, shrink=0.85, aspect=30)
        cbar.ax.tick_params(labelsize=8)
        cbar.set_label("importance (0–1)", fontsize=8.5)
        fig.suptitle(title if title is not None else f"{method} explanation of class '{class_name}'", fontsize=12)
        _fit_figure(fig, grid, aspect, ph, _MAX_FIG_W, _MAX_FIG_H + 1.5)
        return _save(fig, path, dpi)


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

    h, w = hw
    aspect = w / h
    nrows, ncols = len(show), 2 + len(methods)
    extra_w, extra_h = 0.6, 1.0 + 0.25 * nrows
    ph = _panel_height(aspect, nrows, ncols, _MAX_FIG_W - extra_w, _MAX_GRID_H - extra_h, preferred=4.2)
    pw = ph * aspect
    fig_w, fig_h = ncols * pw + extra_w, nrows * ph + extra_h
    fs = float(np.clip(pw * 3.2, 7.0, 10.0))  # font size follows the panel width
    scale = _display_scale(hw, ph, dpi)
    show_rgb = _shrink(rgb, scale)
    dimmed = (show_rgb.astype(np.float32) * 0.45).astype(np.uint8)

    # per-row pictures, computed outside the lock; scores at full resolution
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
            if cam is None:
                cells.append((None, _lookup_note(notes, m, cname) or NO_MAP_TEXT))
            else:
                cells.append((heatmap_overlay(show_rgb, _shrink(cam, scale, "float"), alpha=alpha, cmap=cmap), None))
        rows_data.append(dict(
            ci=ci, cname=cname, g_any=bool(g.any()) if g is not None else None,
            g=_shrink(g, scale, "mask"), p=_shrink(p, scale, "mask"), counts=counts, iou=iou, dice=dice,
            err=_shrink(err, scale), cells=cells))

    with _MPL_LOCK:
        fig = _new_figure(fig_w, fig_h, dpi)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in axes.ravel():
            _clear_axes(ax)
        for r, row in enumerate(rows_data):
            ax0, ax1 = axes[r, 0], axes[r, 1]
            ci, cname = row["ci"], row["cname"]
            ax0.imshow(show_rgb)
            if row["g"] is not None:
                _contour(ax0, row["g"], _visible_colour(colors[ci]), lw=1.0)
                if not row["g_any"]:
                    ax0.text(0.5, 0.02, "not in ground truth", transform=ax0.transAxes, ha="center",
                             va="bottom", fontsize=fs * 0.85, color="white",
                             bbox=dict(boxstyle="round,pad=0.25", facecolor="black", alpha=0.55, edgecolor="none"))
            _row_label(ax0, cname, fs + 2)
            ax1.imshow(row["err"])
            if row["counts"] is None:
                _below(ax1, "no ground truth", fs)
                _contour(ax1, row["p"], _visible_colour(colors[ci]), lw=0.8)
            elif row["iou"] is None:
                _notice(ax1, ABSENT_TEXT, pw, fontsize=fs)
                _below(ax1, "IoU n/a · Dice n/a", fs)
            else:
                _below(ax1, f"IoU {row['iou']:.3f} · Dice {row['dice']:.3f}", fs)
            contour_mask = row["g"] if row["g"] is not None else row["p"]
            for k, (img, text) in enumerate(row["cells"]):
                ax = axes[r, 2 + k]
                if img is None:
                    ax.imshow(dimmed)
                    _notice(ax, text, pw, fontsize=fs * 0.9)
                else:
                    ax.imshow(img)
                    if contour_on_maps:
                        _contour(ax, contour_mask, "white", lw=0.7)
        gt_title = "image + ground truth" if gt is not None else "image (no ground truth)"
        pred_title = "prediction: TP/FP/FN" if gt is not None else "prediction"
        for c, name in enumerate([gt_title, pred_title] + methods):
            axes[0, c].set_title(name, fontsize=fs + 1)
        if methods:
            sm = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
            cbar = fig.colorbar(sm, ax=list(axes[-1, 2:]), location="bottom", fraction=0.1,
                                shrink=0.9, pad=0.01, aspect=max(12, 10 * len(methods)))
            cbar.ax.tick_params(labelsize=fs * 0.9)
            cbar.set_label("importance (0–1)", fontsize=fs)
        if gt is not None:
            below_xlabel = axes[-1, 1].transAxes + ScaledTranslation(0, -fs * 1.6 / 72, fig.dpi_scale_trans)
            axes[-1, 1].legend(handles=_error_legend(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                               bbox_transform=below_xlabel, ncols=1, fontsize=fs * 0.9, frameon=False,
                               handlelength=1.2, borderaxespad=0.0)
        fig.suptitle(title if title is not None else "Explanations per class", fontsize=fs + 3)
        _fit_figure(fig, axes, aspect, ph, _MAX_FIG_W, _MAX_GRID_H)
        return _save(fig, path, dpi)
