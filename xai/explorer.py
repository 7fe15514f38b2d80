"""The interactive explorer of a run: index.html, plain JavaScript and CSS from xai/templates, and its data.

It opens from the run folder over file:// (no server, no network): the page loads explorer/data.js (the
sample table, written at finalize) with a <script> tag, and each sample's explorer/sample{i}.js (its
photograph, labels and maps, written by a figure worker with the sample) by adding a <script> tag when
the sample is opened. Browsers refuse fetch() of local files and taint a canvas that draws a local image,
so the images are PNG/JPEG held as data: URLs inside those scripts (the canvas can then be read, which
the hover values need).

    explorer/sample{i}.js   XAIExplorer.sample({...}): the photograph (JPEG) and per class and method an
                            8-bit grayscale PNG map at the display size (at most EXPLORER_SIDE on the
                            long side), the ground truth and prediction as PNGs of class ids, the
                            probability of the predicted class and of every class (8-bit PNGs)
    explorer/data.js        window.XAI_DATA = {...}: samples, per sample and class the summary numbers
    explorer/explorer.js, explorer/explorer.css   copied from the package
    index.html              the page (xai/templates/explorer.html.j2)

Names of images and classes are data: the page sets them as text (textContent), never as markup.
This module must not import torch: figure workers import it.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .io import atomic_path
from .run_files import RUN_FILES
from .templating import render_template

__all__ = [
    "CLASS_COLORS",
    "COLORMAPS",
    "ERROR_COLORS",
    "EXPLORER_DIR",
    "EXPLORER_SIDE",
    "explorer_hw",
    "explorer_sample_file",
    "write_explorer",
    "write_sample_data",
]

EXPLORER_DIR = "explorer"
EXPLORER_SIDE = 512  # the explorer's copy of a photograph and its maps: at most this long on the long side
DATA_JS = f"{EXPLORER_DIR}/data.js"
ASSETS = ("explorer.js", "explorer.css")
JPEG_QUALITY = 85
# Okabe & Ito (2008), a palette that readers with any common colour-vision deficiency tell apart
ERROR_COLORS = {"tp": "#009E73", "fp": "#D55E00", "fn": "#56B4E9"}  # bluish green, vermillion, sky blue
CLASS_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
COLORMAPS = ("viridis", "cividis")  # perceptually uniform; the first is the default


def explorer_sample_file(sample: str) -> str:
    """The explorer's file of one sample, relative to the run folder."""
    return f"{EXPLORER_DIR}/{sample}.js"


def explorer_hw(hw: tuple[int, int], side: int = EXPLORER_SIDE) -> tuple[int, int]:
    """The size of the explorer's copy of an image of size hw: at most `side` on the long side."""
    h, w = hw
    scale = min(1.0, side / max(h, w))
    return (max(1, round(h * scale)), max(1, round(w * scale)))


def _data_url(image: np.ndarray, jpeg: bool = False) -> str:
    if jpeg:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("the explorer's image could not be encoded")
    return f"data:image/{'jpeg' if jpeg else 'png'};base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _labels(labels: np.ndarray | None, hw: tuple[int, int]) -> str | None:
    if labels is None:
        return None
    small = cv2.resize(np.ascontiguousarray(labels, dtype=np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    return _data_url(small)


def _gray(values: np.ndarray | None, hw: tuple[int, int]) -> str | None:
    """A map in [0, 1] as an 8-bit grayscale PNG (value × 255, rounded) at hw."""
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float32)
    small = v if v.shape == hw else cv2.resize(v, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    return _data_url(np.round(np.clip(small, 0.0, 1.0) * 255.0).astype(np.uint8))


def write_sample_data(
    path: str | Path,
    sample: str,
    name: str,
    rgb: np.ndarray,
    gt: np.ndarray | None,
    pred: np.ndarray,
    confidence: np.ndarray | None,
    maps: Mapping[str, Mapping[str, np.ndarray | None]],
    notes: Mapping[str, Mapping[str, str]],
    regions: Mapping[str, np.ndarray | None],
    probabilities: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write one sample's explorer file (a figure job): rgb, gt, pred, confidence and every map on the
    photograph (the figures' copy of it); maps: {method: {class name: H×W in [0,1] or None}}; regions:
    {class name: the explained pixels, or None for all of them}; probabilities: {class name: H×W, that
    class's probability}, every class of the model (at the explorer's size, explorer_hw, or resized to it
    as the maps are)."""
    hw = explorer_hw(rgb.shape[:2])
    photo = cv2.resize(rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) if hw != rgb.shape[:2] else rgb
    data = {
        "id": sample,
        "name": name,
        "width": hw[1],
        "height": hw[0],
        "photo": _data_url(np.ascontiguousarray(photo[..., ::-1]), jpeg=True),
        "gt": _labels(gt, hw),
        "pred": _labels(pred, hw),
        "confidence": _gray(confidence, hw),
        "probabilities": {c: _gray(v, hw) for c, v in (probabilities or {}).items()},
        "maps": {m: {c: _gray(v, hw) for c, v in per.items()} for m, per in maps.items()},
        "notes": {m: dict(per) for m, per in notes.items()},
        "regions": {
            c: None if r is None else _labels(np.asarray(r, dtype=np.uint8) * 255, hw) for c, r in regions.items()
        },
    }
    text = "XAIExplorer.sample(" + json.dumps(data, ensure_ascii=True, separators=(",", ":")) + ");\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="ascii")


def _colormap(name: str) -> str:
    """256 colours of a matplotlib colour map as one hex string (6 digits each)."""
    import matplotlib

    rgba = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))
    return "".join(f"{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}" for r, g, b, _a in rgba)


def _number(value: Any) -> float | None:
    """A table value, 4 significant digits (the data stays small); None for anything not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if value == 0 or isinstance(value, int):
        return value
    return float(f"{value:.4g}")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_explorer(
    output_dir: str | Path,
    samples: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    methods: Sequence[tuple[str, str]],
    columns: Sequence[tuple[str, str, int]],
    *,
    class_names: Sequence[str] = (),
    title: str = "Segmentation explanations",
    links: Sequence[tuple[str, str]] = (),
    has_truth: bool = True,
) -> Path:
    """Write index.html (RUN_FILES.explorer), explorer/data.js and the page's script and style sheet.

    samples: [{"index": 12, "name": "<image name>", "file": "explorer/sample12.js" or None,
               "rows": {class name: {column key: number}}}]; classes: the explained class names, in order;
    methods: (name, label); columns: (key, label, digits) of the table's numbers, in order; class_names:
    every class of the model by id (the labels of the sample files; default: classes)."""
    out = Path(output_dir)
    class_index = {c: k for k, c in enumerate(classes)}
    rows = [
        [s_i, class_index[c], *(_number(values.get(key)) for key, _label, _digits in columns)]
        for s_i, s in enumerate(samples)
        for c, values in (s.get("rows") or {}).items()
        if c in class_index
    ]
    data = {
        "title": title,
        "classes": list(classes),
        "classNames": list(class_names or classes),
        "classColors": list(CLASS_COLORS),
        "errorColors": ERROR_COLORS,
        "methods": [{"name": n, "label": label} for n, label in methods],
        "columns": [{"key": k, "label": label, "digits": d} for k, label, d in columns],
        "samples": [[int(s["index"]), str(s["name"]), s.get("file")] for s in samples],
        "rows": rows,
        "colormaps": {name: _colormap(name) for name in COLORMAPS},
        "hasTruth": bool(has_truth),
        "gallery": RUN_FILES.gallery,
    }
    js = "window.XAI_DATA = " + json.dumps(data, ensure_ascii=True, separators=(",", ":")) + ";\n"
    _write_text(out / DATA_JS, js)
    for asset in ASSETS:
        with resources.as_file(resources.files("xai") / "templates" / asset) as src:
            target = out / EXPLORER_DIR / asset
            with atomic_path(target) as tmp:
                shutil.copyfile(src, tmp)
    page = render_template(
        "explorer.html.j2", title=title, links=[("Static gallery", RUN_FILES.gallery), *links], colors=ERROR_COLORS
    )
    index = out / RUN_FILES.explorer
    _write_text(index, page)
    return index
