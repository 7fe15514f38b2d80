"""The report's section on the context-dependence matrix (xai.evaluation.context) and its figure.

Per replacement (mean colour, imputed), the mean over the samples of D[i, k] with its 95% bootstrap
interval and n per cell (rows: the explained class i, columns: the replaced region k), as a table of
report.md/report.html and as one heatmap per replacement in one figure (RUN_FILES.context_plot; a diverging
colour map centred at 0, the numbers in the cells). Below each table one sentence per strong dependence: an
off-diagonal cell whose mean changes class i's score by at least STRONG (10%) and whose interval excludes
0, from MIN_VERDICT_SAMPLES samples on (the verdicts' rule: fewer give intervals too unstable to call).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .context import FAR, NEAR, NEAR_WIDTH, context_matrix
from .stats import MIN_VERDICT_SAMPLES, Estimate

__all__ = ["CONTEXT_TITLE", "STRONG", "context_document", "context_sections", "plot_context", "strong_dependences"]

CONTEXT_TITLE = "Context dependence"
STRONG = 0.10  # |mean relative change| from which a dependence is called strong (with its interval off 0)
_REGION = {NEAR: f"the background near the seedling (within {NEAR_WIDTH} px)", FAR: "the background far from it"}
_DONE = {"mean colour": "set to the mean colour", "imputed": "imputed (ROAD)"}
Matrix = dict[str, dict[str, Estimate]]  # {class i: {region k: Estimate}}


def _region(k: str) -> str:
    return _REGION.get(k, f"the {k}")


def _signed(fraction: float) -> str:
    """A fraction as signed whole percent: '-40', '+3', '0' (never '-0')."""
    r = int(round(100 * fraction))
    return f"{r:+d}" if r else "0"


def _percent(e: Estimate) -> str:
    """'-40% [-50, -30] (n=12)', 'n/a' without values."""
    if not e.n:
        return "n/a"
    if e.n == 1 or math.isnan(e.low):
        return f"{_signed(e.mean)}% (n={e.n})"
    return f"{_signed(e.mean)}% [{_signed(e.low)}, {_signed(e.high)}] (n={e.n})"


def _columns(matrix: Matrix) -> list[str]:
    """The replaced regions in the rows' order, the two context columns last."""
    seen = list(dict.fromkeys(k for per_k in matrix.values() for k in per_k))
    return [k for k in seen if k not in (NEAR, FAR)] + [k for k in (NEAR, FAR) if k in seen]


def strong_dependences(matrix: Matrix, replacement: str) -> list[str]:
    """One sentence per strong off-diagonal dependence (see the module's docstring), strongest first."""
    found = []
    for i, per_k in matrix.items():
        for k, e in per_k.items():
            if k == i or e.n < MIN_VERDICT_SAMPLES or math.isnan(e.low) or abs(e.mean) < STRONG:
                continue
            if e.low > 0 or e.high < 0:
                way = "falls" if e.mean < 0 else "rises"
                near, far = sorted((abs(e.low), abs(e.high)))  # the interval off 0: both of one sign
                interval = f"[{100 * near:.0f}, {100 * far:.0f}]"
                text = (
                    f"{i}'s score {way} {100 * abs(e.mean):.0f}% {interval} when {_region(k)} is "
                    f"{_DONE[replacement]} (n={e.n})."
                )
                found.append((-abs(e.mean), text))
    return [text for _, text in sorted(found)]


def plot_context(matrices: dict[str, Matrix], path: Path) -> bool:
    """One heatmap per replacement: rows the explained classes, columns the replaced regions, the mean
    relative change in % in each cell (n/a where no sample has one), one colour scale centred at 0."""
    if not matrices:
        return False
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    first = next(iter(matrices.values()))
    rows, cols = list(first), _columns(first)
    grids = {name: _grid(m, rows, cols) for name, m in matrices.items()}
    found = [float(np.nanmax(np.abs(g))) for g in grids.values() if np.isfinite(g).any()]
    peak = min(max([*found, 5.0]), 100.0)  # ±5% at least; rises beyond +100% get the end colour
    norm, cmap = Normalize(-peak, peak), colormaps["RdBu"]
    fig = Figure(figsize=(1.1 + 1.15 * len(cols) * len(grids), 1.6 + 0.5 * len(rows)), dpi=200, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (name, grid) in zip(axes, grids.items(), strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        ax.set_facecolor("0.85")
        for (r, c), v in np.ndenumerate(grid):
            dark = np.isfinite(v) and abs(v) > 0.6 * peak
            text = f"{_signed(v / 100)}%" if np.isfinite(v) else "n/a"
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(cols)), [k.replace("_", "\n") for k in cols], fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("replaced region k", fontsize=9)
        ax.set_title(f"region {_DONE[name]}", fontsize=10)
        ax.tick_params(length=0)
    axes[0].set_ylabel("explained class i", fontsize=9)
    bar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    bar.set_label("mean change of s_i (%)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    fig.suptitle("Context dependence: class i's score when region k is replaced", fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
    return True


def _grid(matrix: Matrix, rows: list[str], cols: list[str]) -> np.ndarray:
    """rows × cols of the means in % (NaN where no sample has a value)."""
    nan = Estimate(math.nan, math.nan, math.nan, 0)
    return np.array([[100 * matrix.get(i, {}).get(k, nan).mean for k in cols] for i in rows], dtype=np.float64)


def context_document(matrices: dict[str, Matrix]) -> dict[str, Any]:
    """metrics.json's "context": {replacement: {class i: {region k: mean, ci_low, ci_high, n}}}."""
    return {
        name: {i: {k: e.as_dict() for k, e in per_k.items()} for i, per_k in m.items()} for name, m in matrices.items()
    }


def context_sections(rows: list[dict[str, Any]], out: Path, plot: str) -> tuple[list[Any], dict[str, Any]]:
    """The report's sections on the matrix (none without its rows), and metrics.json's "context" entry;
    writes the figure to out / plot."""
    matrices = context_matrix(rows)
    if not matrices:
        return [], {}
    sections: list[Any] = [
        ("h2", CONTEXT_TITLE),
        (
            "p",
            "How much each class's score depends on the pixels of the other classes and of the background: per "
            "sample the relative change D[i, k] = (s_i(x_k) − s_i(x)) / s_i(x) of class i's score s_i (the mean "
            "probability over its region) when region k is replaced: the pixels predicted as class k, the "
            f"background within {NEAR_WIDTH} px of the predicted seedling (background_near) or the rest of the "
            "background (background_far); replaced by the mean colour (0 in the model's input space) or imputed "
            "in distribution (ROAD's noisy linear imputation). Rows: class i; columns: region k; each cell the "
            "mean over the samples with its 95% bootstrap interval and n. The diagonal replaces the class's own "
            "region. A property of the model, not of the maps.",
        ),
    ]
    for name, matrix in matrices.items():
        cols = _columns(matrix)
        table = [[i, *(_percent(per_k[k]) if k in per_k else "n/a" for k in cols)] for i, per_k in matrix.items()]
        sections += [("p", f"Region {_DONE[name]}:"), ("table", (["class i \\ region k", *cols], table))]
        strong = strong_dependences(matrix, name)
        if strong:
            sections.append(("list", strong))
        else:
            sections.append(
                (
                    "p",
                    f"No strong dependence: no off-diagonal cell changes the score by {STRONG:.0%} or more with its "
                    f"95% interval off 0 from {MIN_VERDICT_SAMPLES} samples on.",
                )
            )
    if plot_context(matrices, out / plot):
        sections.append(("img", (plot, "Context dependence: mean relative change of each class's score")))
    return sections, context_document(matrices)
