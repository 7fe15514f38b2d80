"""The heatmap figure of one class and method: input | heatmap with colour bar | heatmap over the image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib import colormaps

from .overlays import DEFAULT_CMAP, NO_MAP_TEXT, as_rgb, check_cam, fit, heatmap_overlay, paint
from .page import CBAR_LABEL, DEFAULT_DPI, LINE_H, MARGIN, MPL_LOCK, Page, grid_shape, page_layout, text_width, wrap


def save_heatmap_figure(
    path: str | Path,
    rgb: np.ndarray,
    cam: np.ndarray | None,
    class_name: str,
    method: str,
    note: str | None = None,
    region_contour: np.ndarray | None = None,
    *,
    segments: np.ndarray | None = None,
    title: str | None = None,
    cmap: str = DEFAULT_CMAP,
    alpha: float = 0.5,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Input | heatmap with colour bar | heatmap over the image.

    cam None: `note` (or "no explanation") replaces the heatmap in the last two panels; with a cam, a
    note is a caption on the overlay. region_contour: HxW bool mask drawn as a thin white contour on
    the overlay. segments: HxW integer labels (superpixels) whose boundaries are drawn on the input.
    A cam with NaN or infinite values raises ValueError.
    """
    rgb = as_rgb(rgb)
    hw = rgb.shape[:2]
    cam = None if cam is None else check_cam(cam, hw)
    colormaps[cmap]  # unknown colour maps fail here, before anything is drawn
    if region_contour is not None and np.shape(region_contour) != hw:
        raise ValueError(f"region_contour has shape {np.shape(region_contour)} but the image is {hw}")
    peak = f" (max {float(cam.max()):.2f})" if cam is not None else ""
    right = (7 + 9 + 7 + text_width("0.0", 8) + 4 + LINE_H * 8.5) * dpi / 72  # gap, bar, ticks, labels
    titles = ["input image", f"{method} heatmap{peak}", f"{method} over the image"]
    _, cols, ph_in = grid_shape(3, hw[1] / hw[0], right / dpi + 0.4, (2 * LINE_H * 10 + 11) / 72)
    with MPL_LOCK:
        lay = page_layout(
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
        length = max(0.85 * (bottom - top), (text_width(CBAR_LABEL, 8.5) + 12) * dpi / 72)
        bar_y = max(lay.top, (top + bottom - length) / 2)
        page = Page(lay.W, max(lay.H, bar_y + length + MARGIN * dpi), dpi, path)
        size = (lay.pw * page.k, lay.ph * page.k)
        show = fit(rgb, size)
        boundaries = [(fit(_boundaries(segments), size, "mask"), (255, 255, 255))] if segments is not None else []
        page.paste(b_in, paint(show, boundaries, 0.8, dim=1.0) if boundaries else show)
        _maps(page, lay, show, cam, note, cmap, alpha)
        if region_contour is not None:
            page.outline(fit(np.asarray(region_contour), size, "mask"), [b_ov], "white", 0.8)
        page.colorbar((lay.x1 + page.px(7), bar_y, page.px(9), length), cmap, 8.0, vertical=True)
        page.titles(lay)
        return page.save(path)


def _maps(page: Page, lay: Any, show: np.ndarray, cam: np.ndarray | None, note: str | None, cmap: str, alpha: float):
    """The heatmap and overlay panels, or the note where there is no map."""
    _, b_hm, b_ov = lay.boxes
    size = (lay.pw * page.k, lay.ph * page.k)
    if cam is None:
        page.paste(b_hm, np.full((size[1], size[0], 3), 235, np.uint8))
        page.paste(b_ov, cv2.convertScaleAbs(show, alpha=0.45))
        page.notice(b_hm, note or NO_MAP_TEXT, room=lay.col_w[1])
        page.notice(b_ov, note or NO_MAP_TEXT, room=lay.col_w[2])
        return
    small = np.clip(fit(cam, size), 0, 1)
    page.paste(b_hm, colormaps[cmap](small, bytes=True))
    page.paste(b_ov, heatmap_overlay(show, small, alpha, cmap))
    if not cam.any():
        page.notice(b_hm, "the map is zero everywhere", 9, lay.col_w[1])
    if note:  # a caption in the lower left corner, or centred in the column of a narrow panel
        x, y, w, h = b_ov
        wide = lay.col_w[2] > 1.05 * w
        text = wrap(note, 0.95 * (lay.col_w[2] if wide else w) - page.px(8), 8, page.dpi)
        left = x + w / 2 if wide else x + 0.02 * w + page.px(2.4)
        page.tag(left, y + 0.99 * h - page.px(2.4), text, 8, ha="center" if wide else "left")


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """HxW bool: pixels whose right or lower neighbour has another label."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    return edge
