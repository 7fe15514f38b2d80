"""A static HTML gallery of the figures of a run: one self-contained gallery.html, no JavaScript,
no external resources, only relative links, so the folder can be moved, zipped or opened from disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from .io import atomic_path
from .run_files import RUN_FILES
from .templating import render_template

__all__ = ["ERRORS_LEGEND", "SPLIT_MEASURES", "write_gallery"]

ERRORS_LEGEND = (
    "TP: correctly predicted pixels, FP: predicted but not in the ground truth, FN: in the ground truth but missed."
)
SPLIT_MEASURES = (("iou", "IoU", 3), ("dice", "Dice", 3))  # (key, label, digits): the numbers under a class


def _rel_url(path: Any, output_dir: Path, what: str) -> tuple[str, Path]:
    """(URL to put in the page, file on disk) for a figure path relative to output_dir.

    Absolute paths inside output_dir are made relative; anything that would not survive moving the
    folder (absolute paths elsewhere, URLs, '..' leaving the folder) is refused with ValueError.
    """
    raw = os.fspath(path)
    if not raw:
        raise ValueError(f"{what}: empty path")
    if urlsplit(raw).scheme and not re.match(r"^[A-Za-z]:[\\/]", raw):
        raise ValueError(f"{what}: {raw!r} is a URL; the gallery links only to files in its folder")
    p = Path(raw)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(output_dir.resolve())
        except ValueError:
            raise ValueError(f"{what}: {raw!r} is outside the gallery folder {output_dir}") from None
    parts = PurePosixPath(p.as_posix()).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ValueError(f"{what}: {raw!r} leaves the gallery folder")
    url = "/".join(quote(part) for part in parts)
    return url, output_dir / p


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        return f"{float(value):,.{digits}f}" if digits == 0 else f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "n/a"


def _anchor(sample_id: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", sample_id).strip("-") or "sample"
    if not base[0].isalpha():
        base = "s-" + base
    anchor, n = base, 2
    while anchor in used:
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    return anchor


def _ordered_kinds(kinds: Iterable[str], labels: Mapping[str, str]) -> list[str]:
    kinds = list(dict.fromkeys(kinds))
    known = [k for k in labels if k in kinds]
    return known + sorted(k for k in kinds if k not in labels)


def _sample_entry(
    sample: Mapping[str, Any],
    i: int,
    class_names: Sequence[str],
    labels: Mapping[str, str],
    url_of: Any,
    used: set[str],
    measures: Sequence[tuple[str, str, int]] = SPLIT_MEASURES,
) -> dict[str, Any]:
    """What the template shows of one sample: classes (columns), a row per per-class kind, per-sample figures."""
    sid = str(sample.get("id", f"sample{i}"))
    name = str(sample.get("name", sid))
    figures: Mapping[str, Mapping[str, Any]] = sample.get("figures") or {}
    metrics: Mapping[str, Mapping[str, Any]] = sample.get("metrics") or {}
    per_sample = dict(sample.get("sample_figures") or {})
    if sample.get("comparison"):
        per_sample.setdefault("comparison", sample["comparison"])
    named = [c for kind in figures.values() for c in (kind or {})] + list(metrics)
    classes = [c for c in class_names if c in named] + sorted({c for c in named if c not in class_names})
    rank = {k: n for n, k in enumerate(labels)}
    rows = []
    for kind in _ordered_kinds(figures, labels):
        per_class = figures.get(kind) or {}
        cells = [url_of(per_class[c], f"sample {sid!r} {kind} {c!r}") if per_class.get(c) else None for c in classes]
        rows.append({"label": labels.get(kind, kind), "cells": cells})
    numbers = {c: m for c, m in metrics.items() if isinstance(m, Mapping)}
    scores = {
        c: " · ".join(f"{label} {_fmt(m.get(key), digits)}" for key, label, digits in measures)
        for c, m in numbers.items()
    }
    first = {c: _fmt(m.get(measures[0][0]), measures[0][2]) for c, m in numbers.items()} if measures else {}
    return {
        "id": sid,
        "name": name,
        "anchor": _anchor(sid, used),
        "classes": classes,
        "rows": rows,
        "scores": scores if measures else {},
        "first": first,
        "metric_classes": list(metrics),
        "per_sample": [
            {"label": labels.get(k, k), "url": url_of(path, f"sample {sid!r} {k}")}
            for k, path in sorted(per_sample.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
        ],
    }


def write_gallery(
    output_dir: str | Path,
    samples: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    title: str = "Segmentation explanations",
    *,
    kind_labels: Mapping[str, str] | None = None,
    links: Sequence[tuple[str, str]] = (),
    measures: Sequence[tuple[str, str, int]] = SPLIT_MEASURES,
    legend: str = ERRORS_LEGEND,
) -> Path:
    """Write output_dir/gallery.html (RUN_FILES.gallery) atomically from gallery.html.j2; return its path.

    samples: [{"id": "sample0", "name": "<image name>",
               "figures": {kind: {class_name: relative_path}},   # per-class kinds: tpfpfn, a method, ...
               "sample_figures": {kind: relative_path},          # per-sample kinds: comparison, ...
               "metrics": {class_name: {"iou": float, "dice": float}}}]   # optional
    Paths are relative to output_dir (absolute paths inside it are accepted and made relative; any path
    leaving the folder is refused with ValueError). For every sample: a table with one column per class
    (classes in class_names order, then any other class named by the figures or metrics), one row per
    per-class kind, the numbers of `measures` under each class name ((key of metrics, label, digits):
    IoU and Dice by default; the first one is also the contents' column), and its per-sample figures
    below. kind_labels: {kind: label}, also the order (kinds it does not name follow, sorted). links:
    (label, relative path) shown under the title (the evaluation report). legend: the line under the
    title that says what the figures show.
    """
    labels = dict(kind_labels or {})
    output_dir = Path(output_dir)
    used: set[str] = set()

    def url_of(path: Any, what: str) -> str:
        return _rel_url(path, output_dir, what)[0]

    entries = [_sample_entry(s, i, class_names, labels, url_of, used, measures) for i, s in enumerate(samples)]
    order = {c: i for i, c in enumerate(class_names)}
    toc_classes = sorted({c for e in entries for c in e["metric_classes"]}, key=lambda c: (order.get(c, len(order)), c))
    page = render_template(
        "gallery.html.j2",
        title=title,
        legend=legend,
        first_label=measures[0][1] if measures else None,
        samples=entries,
        toc_classes=toc_classes if measures else [],
        links=[(label, url_of(href, label)) for label, href in links],
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    index = output_dir / RUN_FILES.gallery
    with atomic_path(index) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return index
