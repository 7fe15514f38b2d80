"""The uncertainty figure of one sample (the researchers' six panels, and two more):

    input | predicted classes | confidence | variance of the predicted class
    entropy | mutual information (softmax heads) | variance over the image | entropy over the image

Every map keeps its own scale: confidence and the normalised entropy and mutual information in [0, 1],
the variance from 0 to its maximum (a variance of probabilities is at most 0.25), each with a colour bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..io import atomic_path
from .overlays import as_ids, as_rgb, check_cam, colorize_classes, heatmap_overlay
from .page import DEFAULT_DPI, MPL_LOCK

_NO_MI = (
    "mutual information: only for softmax heads\n(a sigmoid head's classes are separate\n"
    "Bernoulli variables: see the per-class figures)"
)


def save_uncertainty_figure(
    path: str | Path,
    rgb: np.ndarray,
    pred: np.ndarray,
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    confidence: np.ndarray,
    variance: np.ndarray,
    entropy: np.ndarray,
    mutual_information: np.ndarray | None = None,
    *,
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Eight panels of one sample's predictive uncertainty (maps on the photograph, H×W)."""
    rgb = as_rgb(rgb)
    hw = rgb.shape[:2]
    pred = as_ids(pred, hw, "pred")
    maps = {name: check_cam(m, hw, name) for name, m in (("confidence", confidence), ("variance", variance))}
    maps["entropy"] = check_cam(entropy, hw, "entropy")
    mi = None if mutual_information is None else check_cam(mutual_information, hw, "mutual_information")
    aspect = hw[1] / hw[0]
    panel = min(3.6, 15.0 / (4 * aspect))
    with MPL_LOCK:
        fig = Figure(figsize=(4 * panel * aspect + 1.6, 2 * panel + 1.1), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 4)
        for ax in axes.flat:
            ax.set_axis_off()
        axes[0, 0].imshow(rgb)
        axes[0, 0].set_title("input image", fontsize=10)
        axes[0, 1].imshow(colorize_classes(pred, colors))
        axes[0, 1].set_title("predicted classes", fontsize=10)
        present = sorted(int(c) for c in np.unique(pred) if 0 <= c < len(class_names))
        handles = [Patch(facecolor=_rgb(colors[c]), edgecolor="0.5", label=class_names[c]) for c in present]
        axes[0, 1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), fontsize=7, frameon=False)
        top = max(float(maps["variance"].max()), 1e-6)
        _map(fig, axes[0, 2], maps["confidence"], "RdYlGn", 0, 1, "confidence\n(mean P of the predicted class)")
        _map(fig, axes[0, 3], maps["variance"], "jet", 0, top, "variance\n(P of the predicted class)")
        _map(fig, axes[1, 0], maps["entropy"], "jet", 0, 1, "entropy\n(normalised)")
        if mi is not None:
            _map(fig, axes[1, 1], mi, "jet", 0, 1, "mutual information\n(BALD, normalised)")
        else:
            axes[1, 1].text(0.5, 0.5, _NO_MI, ha="center", va="center", fontsize=8, transform=axes[1, 1].transAxes)
        axes[1, 2].imshow(heatmap_overlay(rgb, maps["variance"] / top, 0.5, "jet"))
        axes[1, 2].set_title("variance\nover the image", fontsize=9)
        axes[1, 3].imshow(heatmap_overlay(rgb, np.clip(maps["entropy"], 0, 1), 0.5, "jet"))
        axes[1, 3].set_title("entropy\nover the image", fontsize=9)
        fig.suptitle(title or "Predictive uncertainty", fontsize=12)
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", facecolor="white")
    return path


def _map(fig: Figure, ax: Axes, values: np.ndarray, cmap: str, vmin: float, vmax: float, title: str) -> None:
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=9)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=7)


def _rgb(colour: Sequence[int]) -> tuple[float, float, float]:
    return (colour[0] / 255, colour[1] / 255, colour[2] / 255)
