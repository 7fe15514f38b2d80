"""Output kinds declared once: folder, file pattern, renderer, label, per class or per sample.

The layout (paths), the figure workers (they call `draw`, a function of xai.figures), finalize and the
gallery (labels and order, from the run's record) all read the kinds of a run:

    tpfpfn       tpfpfn_maps/sample{i}_tpfpfn_{class}.png           per class    TP/FP/FN of the prediction
    prediction   prediction_maps/sample{i}_prediction_{class}.png   per class    instead of tpfpfn for photographs
                                                                                 without masks (--images)
    <method>     <folder>/sample{i}_<method>_{class}.png            per class    a method's heatmap (one kind each)
    comparison   comparison/sample{i}_comparison.png                per sample   more than one method: the grid

A new kind is one OutputKind in `output_kinds` (or in a method's `outputs`): its draw function gets the
arguments `arguments(view, class)` picks from the sample's SampleView.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..figures import save_comparison_figure, save_error_figure, save_heatmap_figure, save_prediction_figure
from ..figures.uncertainty import save_uncertainty_figure

__all__ = ["ERROR_KIND", "PREDICTION_KIND", "OutputKind", "SampleView", "output_kinds"]

ERROR_KIND = "tpfpfn"
PREDICTION_KIND = "prediction"


@dataclass
class SampleView:
    """What the figures of one sample show, on the photograph: rgb, gt (None when unknown) and pred
    (H×W ids), per method and explained class a map in [0,1] (None with a note why), and the pixels whose
    score was explained per class (None: every pixel or none); confidence: the probability of the
    predicted class (None when unknown)."""

    name: str
    rgb: np.ndarray
    gt: np.ndarray | None
    pred: np.ndarray
    class_names: list[str]
    colors: list[tuple[int, int, int]]
    classes: list[int]
    region: str
    labels: dict[str, str]  # method -> label
    maps: dict[str, dict[int, np.ndarray | None]]
    notes: dict[str, dict[int, str]]
    regions: dict[int, np.ndarray | None] = field(default_factory=dict)
    extra: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # per method: H×W maps beside its maps
    class_agnostic: set[str] = field(default_factory=set)  # methods whose map is the same for every class
    confidence: np.ndarray | None = None


Arguments = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class OutputKind:
    """name: the key of the kind in records; label: the gallery's row label; folder and pattern: where its
    files go ({sample}, {kind}, {cls}); per: "class" or "sample"; draw(path, *args, **kwargs) makes one
    file; arguments(view, class index or None) -> (args, kwargs) picks what of the sample it shows."""

    name: str
    label: str
    folder: str
    per: str
    draw: Callable[..., Any]
    arguments: Callable[[SampleView, int | None], Arguments]
    pattern: str = "{sample}_{kind}_{cls}.png"

    def file(self, sample: str, cls: str | None = None) -> str:
        return f"{self.folder}/" + self.pattern.format(sample=sample, kind=self.name, cls=cls)

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "folder": self.folder, "per": self.per}


def _error_arguments(view: SampleView, c: int | None) -> Arguments:
    assert c is not None
    args = (view.rgb, view.gt, view.pred, c, view.class_names, view.colors)
    return args, {"title": f"{view.name}: {view.class_names[c]}"}


def _prediction_arguments(view: SampleView, c: int | None) -> Arguments:
    assert c is not None
    args = (view.rgb, view.pred, c, view.class_names, view.colors, view.confidence)
    return args, {"title": f"{view.name}: {view.class_names[c]} (no ground truth)"}


def _heatmap_arguments(method: str) -> Callable[[SampleView, int | None], Arguments]:
    def arguments(view: SampleView, c: int | None) -> Arguments:
        assert c is not None
        label, cname = view.labels[method], view.class_names[c]
        args = (view.rgb, view.maps[method][c], cname, label)
        note = view.notes[method].get(c)
        if note is None and method in view.class_agnostic:
            note = f"{label} is class-agnostic: the same map for every class"
        return args, {
            "note": note,
            "region_contour": view.regions.get(c),
            "segments": view.extra.get(method, {}).get("superpixels"),
            "title": f"{view.name}: {label} of {cname} (region {view.region})",
        }

    return arguments


def _comparison_arguments(view: SampleView, _c: int | None) -> Arguments:
    labels = view.labels
    n = len(view.class_names)
    method_maps = {labels[m]: [view.maps[m].get(c) for c in range(n)] for m in view.maps}
    notes = {(labels[m], view.class_names[c]): text for m in view.maps for c, text in view.notes[m].items()}
    args = (view.rgb, view.gt, view.pred, method_maps, view.class_names, view.colors)
    return args, {
        "classes_to_show": list(view.classes),
        "notes": notes,
        "title": f"{view.name}: {' vs '.join(labels[m] for m in view.maps)} (region {view.region})",
    }


ERROR_OUTPUT = OutputKind(ERROR_KIND, "TP / FP / FN", "tpfpfn_maps", "class", save_error_figure, _error_arguments)
PREDICTION_OUTPUT = OutputKind(
    PREDICTION_KIND, "Prediction", "prediction_maps", "class", save_prediction_figure, _prediction_arguments
)
COMPARISON_OUTPUT = OutputKind(
    "comparison",
    "Comparison of methods",
    "comparison",
    "sample",
    save_comparison_figure,
    _comparison_arguments,
    pattern="{sample}_comparison.png",
)


def _uncertainty_arguments(method: str) -> Callable[[SampleView, int | None], Arguments]:
    def arguments(view: SampleView, _c: int | None) -> Arguments:
        maps = view.extra[method]
        args: tuple[Any, ...] = (view.rgb, view.pred, view.class_names, view.colors, maps["confidence"])
        args += (maps["predicted_variance"], maps["entropy"], maps.get("mutual_information"))
        return args, {"title": f"{view.name}: {view.labels[method]}"}

    return arguments


def _uncertainty_outputs(name: str, label: str, folder: str) -> list[OutputKind]:
    """The researchers' uncertainty figure: uncertainty_maps/sample{i}_uncertainty.png."""
    return [
        OutputKind(
            f"{name}_summary",
            f"{label}: summary",
            folder,
            "sample",
            save_uncertainty_figure,
            _uncertainty_arguments(name),
            pattern=f"{{sample}}_{name}.png",
        )
    ]


# Kinds that the methods of a family add to their heatmaps: family -> (name, label, folder) -> kinds.
FAMILY_OUTPUTS: dict[str, Callable[[str, str, str], list[OutputKind]]] = {"uncertainty": _uncertainty_outputs}


def output_kinds(methods: Sequence[tuple[str, ...]], comparison: bool, ground_truth: bool = True) -> list[OutputKind]:
    """The figure kinds of a run: TP/FP/FN (the prediction without a ground truth: photographs without
    masks), a heatmap per (method, label, folder[, family]) and what its family adds, the comparison grid."""
    kinds = [ERROR_OUTPUT if ground_truth else PREDICTION_OUTPUT]
    for name, label, folder, *family in methods:
        kinds.append(OutputKind(name, label, folder, "class", save_heatmap_figure, _heatmap_arguments(name)))
        if family and family[0] in FAMILY_OUTPUTS:
            kinds += FAMILY_OUTPUTS[family[0]](name, label, folder)
    return kinds + ([COMPARISON_OUTPUT] if comparison else [])
