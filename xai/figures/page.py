"""The page of a figure: a grid of picture panels laid out in inches from estimated text sizes, composed
as one RGB picture that matplotlib draws 1:1 (vector formats embed it at twice the page resolution),
with matplotlib's text, legends, contours and colour bars on top. Text sizes are estimated from
character counts, never measured (measuring with matplotlib's layout engines cost 4x the drawing).
Drawing uses `Figure` + Agg (no pyplot) under a module lock; files are written atomically in the
format of the path's suffix (.png, .pdf, .svg, ...).
"""

from __future__ import annotations

import math
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from contourpy import contour_generator
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Affine2D

from ..io import atomic_path

DEFAULT_DPI = 150
CBAR_LABEL = "importance (0–1)"
MAX_W, MAX_H, MAX_GRID_H = 16.0, 11.5, 21.5  # figure limits, inches (single image; comparison grid)
PANEL_H, MIN_PANEL_H, MIN_COL = 4.6, 1.4, 1.15  # inches
MARGIN, GAP = 0.06, 0.07  # inches: around the figure, between columns
CHAR_W, LINE_H, BOLD = 0.58, 1.25, 1.12  # estimated character width and line height in font sizes; bold width
TITLE_FS, LEGEND_FS = 10, 8.5  # a panel page's titles and the legends under its panels (error, prediction)
LEGEND_STYLE: dict[str, Any] = {
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
PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_UP,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
]
VECTOR = {"pdf", "svg", "svgz", "eps", "ps", "pgf"}

MPL_LOCK = threading.RLock()  # matplotlib's caches are not documented as thread-safe


# ---- text estimates, layout ---------------------------------------------------------------------------


def wrap(text: str, width_px: float, fs: float, dpi: float) -> str:
    """text wrapped to an estimated width_px at font size fs."""
    chars = max(4, int(width_px * 72 / dpi / (CHAR_W * fs)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) or line for line in str(text).split("\n"))


def text_width(text: str, fs: float) -> float:
    """Estimated width of text in points."""
    return max(len(line) for line in text.split("\n")) * CHAR_W * fs


def text_height(text: str, fs: float) -> float:
    return (text.count("\n") + 1) * LINE_H * fs


def legend_size(labels: Sequence[str], fs: float, ncol: int) -> tuple[float, float]:
    """Estimated (width, height) in points of a legend in ncol columns (filled column by column); (0, 0)
    for no labels."""
    if not labels:
        return 0.0, 0.0
    rows = math.ceil(len(labels) / ncol)
    cols = [labels[i : i + rows] for i in range(0, len(labels), rows)]
    width = sum(1.8 * fs + max(text_width(t, fs) for t in col) for col in cols) + (len(cols) - 1) * fs
    return width, rows * 1.2 * fs + (rows - 1) * 0.4 * fs


def grid_shape(n: int, aspect: float, band_w: float, band_h: float) -> tuple[int, int, float]:
    """(rows, cols, panel height in inches) for n panels of aspect w/h: portrait images side by side,
    wide ones stacked so that panels stay large. band_w / band_h: inches taken by text per figure / row."""

    def fits(rows: int, cols: int) -> tuple[float, float]:  # the panel height the width allows, the height allows
        return min(PANEL_H, (MAX_W - band_w) / (cols * aspect)), MAX_H / rows - band_h

    def score(rows: int, cols: int) -> float:  # panel area, less for empty cells and for each extra row
        return max(0.0, min(fits(rows, cols))) ** 2 * (n / rows / cols) ** 2 / (1 + 0.35 * (rows - 1))

    rows, cols = max(
        ((r, math.ceil(n / r)) for r in range(1, n + 1) if (r - 1) * math.ceil(n / r) < n),
        key=lambda shape: score(*shape),
    )
    by_w, by_h = fits(rows, cols)
    return rows, cols, min(by_w, max(by_h, MIN_PANEL_H))  # many rows make a taller page, not tiny panels


def page_layout(
    dpi: float,
    aspect: float,
    cols: int,
    ph_in: float,
    titles: Sequence[str],
    fs: float,
    sup: str,
    below: Mapping[int, tuple[float, float]] | None = None,
    min_col: float = MIN_COL * 72,
    left: float = 0.0,
    right: float = 0.0,
    bottom: float = 0.0,
) -> SimpleNamespace:
    """Page pixels of len(titles) panels (aspect w/h, ph_in inches high, row-major in `cols` columns at
    least min_col points wide), each under its title (font fs; "" for none) and above `below`
    {panel: (w, h) points, 3 points below it}; a suptitle (font fs + 2) on top; bands of left / right /
    bottom px."""
    pt, margin, gap, n = dpi / 72, MARGIN * dpi, GAP * dpi, len(titles)
    below = below or {}
    pw, ph = max(1, int(ph_in * aspect * dpi)), max(1, int(ph_in * dpi))
    col_w = [max(pw, min_col * pt)] * cols
    for i, (w, _) in below.items():
        col_w[i % cols] = max(col_w[i % cols], w * pt)
    titles = [wrap(t, col_w[i % cols] + gap, fs, dpi) if t else "" for i, t in enumerate(titles)]
    grid_w = sum(col_w) + (cols - 1) * gap
    width = math.ceil(max(2 * margin + left + grid_w + right, min(text_width(sup, fs + 2) * pt, 6 * dpi) + 2 * margin))
    sup = wrap(sup, width - 2 * margin, fs + 2, dpi)
    x0 = (width - grid_w - left - right) / 2 + left
    col_x = [x0 + sum(col_w[:c]) + c * gap for c in range(cols)]
    y = top = margin + (text_height(sup, fs + 2) + 2) * pt
    boxes = []
    for r in range(0, n, cols):
        cells = range(r, min(n, r + cols))
        y = math.ceil(y + max((text_height(titles[i], fs) + 5) * pt if titles[i] else 0 for i in cells))
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


class Page(Artist):
    """A figure of W x H page pixels: one RGB picture with k pixels per page pixel (`pixels`, top row
    first), drawn 1:1 by Agg and scaled to the page by vector renderers, under text, legends, contours
    and colour bars."""

    def __init__(self, width: float, height: float, dpi: int, path: str | Path) -> None:
        super().__init__()
        self.fmt = Path(path).suffix.lstrip(".").lower() or "png"
        self.k = 2 if self.fmt in VECTOR else 1
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
            wrap(text, 0.85 * max(w, room) - self.px(fs), fs, self.dpi),
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
            **LEGEND_STYLE,
        )

    def colorbar(self, box: Sequence[float], cmap: str, fs: float, vertical: bool) -> None:
        """A 0-1 colour bar in the box (x, y, w, h), ticks right of it (vertical) or below."""
        x, y, w, h = box
        W, H = self.W + 0.25, self.H + 0.25
        cax = self.fig.add_axes((x / W, 1 - (y + h) / H, w / W, h / H))
        bar = self.fig.colorbar(
            ScalarMappable(Normalize(0, 1), cmap), cax=cax, orientation="vertical" if vertical else "horizontal"
        )
        bar.set_label(CBAR_LABEL, fontsize=fs * 1.06)
        cax.tick_params(labelsize=fs, width=0.8)

    def titles(self, lay: SimpleNamespace) -> None:
        self.text(self.W / 2, MARGIN * self.dpi, lay.sup, lay.fs + 2, ha="center", va="top", multialignment="center")
        for (x, y, w, _), t in zip(lay.boxes, lay.titles, strict=True):
            self.text(x + w / 2, y - self.px(4), t, lay.fs, ha="center", va="bottom", multialignment="center")

    def render(self) -> np.ndarray:
        """The page as Agg draws it: H×W×3 uint8 RGB."""
        canvas = FigureCanvasAgg(self.fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            if self.fmt == "png":
                ok, png = cv2.imencode(".png", cv2.cvtColor(self.render(), cv2.COLOR_RGB2BGR), PNG_PARAMS)
                if not ok:
                    raise RuntimeError(f"PNG encoding failed for {path}")
                tmp.write_bytes(png.tobytes())
            else:
                self.fig.savefig(tmp, format=self.fmt, dpi=self.dpi, facecolor="white")
        return path


# ---- a panel page: titled panels with legends under them (the error and prediction figures) ----------


@dataclass(frozen=True)
class PanelLegend:
    """The legend under one panel of a panel page: (colour, text) rows in ncol columns, the colour
    patches edged in grey or not."""

    items: Sequence[tuple[Sequence[int], str]]
    ncol: int = 1
    edge: bool = False

    @property
    def labels(self) -> list[str]:
        return [text for _, text in self.items]


@dataclass(frozen=True)
class PanelGrid:
    """The grid of a panel page: panels of aspect w/h, ph_in inches high, in `cols` columns col_pt points
    wide (at the least)."""

    aspect: float
    cols: int
    ph_in: float
    col_pt: float

    @classmethod
    def fit(cls, n: int, aspect: float, title_lines: int) -> PanelGrid:
        """The grid of n panels (`grid_shape`) with text bands for titles of up to title_lines lines and
        a legend of three rows with their pads."""
        _, cols, ph_in = grid_shape(n, aspect, 0.4, (title_lines * LINE_H * TITLE_FS + 14 + 5.2 * LEGEND_FS) / 72)
        return cls(aspect, cols, ph_in, 72 * max(ph_in * aspect, MIN_COL))


def legend_columns(labels: Sequence[str], col_pt: float) -> int:
    """The columns of a panel page's legend under a column col_pt points wide: as many as fit, 3 only
    under a panel 3.2 in wide, else 2, else 1."""
    fitting = [n for n in (3, 2) if (n == 2 or col_pt >= 3.2 * 72) and legend_size(labels, LEGEND_FS, n)[0] <= col_pt]
    return fitting[0] if fitting else 1


def save_panel_page(
    path: str | Path,
    dpi: int,
    grid: PanelGrid,
    titles: Sequence[str],
    sup: str,
    legends: Mapping[int, PanelLegend],
    draw: Callable[[Page, SimpleNamespace], None],
) -> Path:
    """A panel page saved to `path` (its suffix: the format): len(titles) panels in `grid`, each under its
    title (font TITLE_FS), the suptitle `sup` on top; `draw(page, lay)` draws the pictures, then the
    titles and `legends` {panel: PanelLegend} follow."""
    below = {i: legend_size(legend.labels, LEGEND_FS, legend.ncol) for i, legend in legends.items()}
    with MPL_LOCK:
        lay = page_layout(dpi, grid.aspect, grid.cols, grid.ph_in, titles, TITLE_FS, sup, below)
        page = Page(lay.W, lay.H, dpi, path)
        draw(page, lay)
        page.titles(lay)
        for i, legend in legends.items():
            x, y, w, h = lay.boxes[i]
            page.legend(legend.items, x + w / 2, y + h + page.px(3), LEGEND_FS, legend.ncol, edge=legend.edge)
        return page.save(path)
