"""An explained sample's outputs: what its figures show (SampleView), its summary rows, its figure jobs
and its maps file, as the run's output kinds and layout declare them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ..data import Letterbox
from ..explorer import explorer_hw, write_sample_data
from ..mapfile import MapFile, write_maps
from ..methods import get_method
from ..metrics import summary_columns
from ..targets import Region, region_masks
from .layout import Layout, SampleFiles, sample_id
from .outputs import SampleView
from .samples import Explained
from .writer import FigureJob

__all__ = ["DISPLAY_SIDE", "Presentation", "display_hw"]

DISPLAY_SIDE = 4096  # figures are drawn from a copy of the photograph at most this long on its long side


def display_hw(orig_hw: tuple[int, int], side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """The size of the display copy: the photograph's, or scaled down to `side` on the long side."""
    h, w = orig_hw
    scale = min(1.0, side / max(h, w))
    return (max(1, round(h * scale)), max(1, round(w * scale))) if scale < 1 else (h, w)


def _on_display(maps: dict[str, np.ndarray], box: Letterbox, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """A method's extra 2-D maps at the display size (labels, integer maps, by nearest neighbour)."""
    return {
        k: box.to_size(v, hw, nearest=not np.issubdtype(v.dtype, np.floating)) for k, v in maps.items() if v.ndim == 2
    }


@dataclass
class Presentation:
    """What a sample's outputs need to know of the run: the classes (every name by output id, the
    explained ids, their colours), the explained region, where files go and how maps are stored."""

    class_names: list[str]
    class_ids: list[int]
    colors: list[tuple[int, int, int]]
    region: str
    layout: Layout
    map_dtype: str
    region_spec: Region | None = None  # the region with its band width and junction classes (boundary, junction)

    def view(self, ex: Explained) -> SampleView:
        """What the figures of the sample show, on the photograph (or its display copy, at most DISPLAY_SIDE
        on the long side, for large photographs): each map mapped back through the letterbox, straight to
        that size, so that memory does not grow with the photograph beyond its own pixels."""
        box = ex.letterbox
        hw = display_hw(box.orig_hw)
        if hw == tuple(box.orig_hw):
            rgb, gt, pred = ex.rgb, ex.gt, ex.pred
        else:
            rgb = cv2.resize(ex.rgb, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            gt = None if ex.gt is None else cv2.resize(ex.gt, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
            pred = box.to_size(ex.pred_input, hw, nearest=True)
        confidence = None if ex.confidence_input is None else box.to_size(ex.confidence_input, hw, nearest=True)
        maps, notes = self._maps(ex, hw)
        extra = {
            m: {
                k: box.to_size(v, hw, nearest=not np.issubdtype(v.dtype, np.floating))
                for k, v in per.items()
                if v.ndim == 2
            }
            for m, per in ex.extra.items()
        }
        return SampleView(
            name=ex.name,
            rgb=rgb,
            gt=gt,
            pred=pred,
            class_names=list(self.class_names),
            colors=list(self.colors),
            classes=list(ex.classes),
            region=self.region,
            labels={m: get_method(m).label for m in ex.maps},
            maps=maps,
            notes=notes,
            regions=self._regions(gt, pred, list(ex.classes)),
            extra=extra,
            class_agnostic={m for m in ex.maps if not get_method(m).cls.class_specific},
            confidence=confidence,
        )

    def _maps(
        self, ex: Explained, hw: tuple[int, int]
    ) -> tuple[dict[str, dict[int, np.ndarray | None]], dict[str, dict[int, str]]]:
        """Each method's map per class at the display size (None, with a note, where the region was empty)."""
        maps: dict[str, dict[int, np.ndarray | None]] = {}
        notes: dict[str, dict[int, str]] = {}
        for method, stack in ex.maps.items():
            maps[method], notes[method] = {}, {}
            for j, c in enumerate(ex.classes):
                if ex.empty[method][j]:
                    maps[method][c] = None
                    name = self.class_names[c]
                    notes[method][c] = f"class '{name}' absent from its region ({self.region}): nothing to explain"
                else:
                    maps[method][c] = np.clip(ex.letterbox.to_size(stack[j], hw), 0.0, 1.0)
        return maps, notes

    def _regions(self, gt: np.ndarray | None, pred: np.ndarray, classes: list[int]) -> dict[int, np.ndarray | None]:
        """The pixels whose class score was explained, on the photograph, per class (None for region 'all' or
        an empty region); one pass over the photograph for every class."""
        if self.region == "all":
            return dict.fromkeys(classes)
        masks = region_masks(
            torch.from_numpy(pred)[None].long(),
            None if gt is None else torch.from_numpy(gt)[None].long(),
            list(classes),
            self.region_spec or self.region,
            len(self.class_names),
        )[0].bool()
        return {c: (m.numpy() if bool(m.any()) else None) for c, m in zip(classes, masks, strict=True)}

    def summary_rows(self, view: SampleView, ex: Explained) -> list[dict[str, Any]]:
        """One row per explained class: the prediction's metrics (on the photograph; without a mask those that
        need none, xai.metrics.registry), then each method's map metrics (on the figures' copy: the photograph,
        or its display copy when it is larger) and seconds."""
        families = {method: get_method(method).family for method in view.maps}
        seconds = {method: {"seconds": ex.seconds[method]} for method in view.maps}
        rows = []
        for c in self.class_ids:
            row: dict[str, Any] = {"sample": sample_id(ex.index), "image": ex.name, "class": self.class_names[c]}
            maps = {method: per_class[c] for method, per_class in view.maps.items()}
            columns = summary_columns(
                ex.gt,
                ex.pred,
                c,
                maps,
                families,
                confidence=lambda: ex.confidence,
                maps_gt_pred=(view.gt, view.pred),
                after=seconds,
            )
            row.update(columns)
            rows.append(row)
        return rows

    def figure_jobs(self, view: SampleView, files: SampleFiles) -> list[FigureJob]:
        """Every figure of one sample, one job per file, as the run's output kinds declare them."""
        jobs = []
        for kind in self.layout.kinds:
            if kind.per == "class":
                for c in self.class_ids:
                    args, kwargs = kind.arguments(view, c)
                    path = self.layout.path(files.figures[kind.name][self.class_names[c]])
                    jobs.append(FigureJob(kind.draw, path, args, kwargs))
            else:
                args, kwargs = kind.arguments(view, None)
                jobs.append(FigureJob(kind.draw, self.layout.path(files.sample_figures[kind.name]), args, kwargs))
        return jobs

    def maps_file_job(self, ex: Explained, files: SampleFiles) -> FigureJob:
        """The job that writes raw_maps/sample{i}.npz (xai.mapfile: per method a C×H×W stack at the input
        resolution): done by a worker, as the figures are, so that the model never waits for it."""
        stacks = {}
        for method, stack in ex.maps.items():
            full = np.zeros((len(self.class_names), *stack.shape[-2:]), dtype=np.float32)
            full[ex.classes] = stack
            stacks[method] = full
        mapfile = MapFile(
            maps=stacks,
            gt=ex.gt,
            pred_input=ex.pred_input,
            gt_input=ex.gt_input,
            letterbox=ex.letterbox,
            class_names=list(self.class_names),
            class_ids=list(self.class_ids),
            image_name=ex.name,
            region=self.region,
            map_dtype=self.map_dtype,
            extra=ex.raw_extra,
        )
        return FigureJob(write_maps, self.layout.path(files.raw), (mapfile,), {})

    def explorer_job(self, ex: Explained, view: SampleView, files: SampleFiles) -> FigureJob:
        """The job that writes the explorer's file of the sample (xai.explorer): a worker resizes and
        encodes the photograph, labels and maps the figures draw from, and every class's probability (made
        small here: _explorer_probabilities)."""
        names = self.class_names
        maps = {m: {names[c]: v for c, v in per.items()} for m, per in view.maps.items()}
        notes = {m: {names[c]: note for c, note in per.items()} for m, per in view.notes.items()}
        regions = {names[c]: view.regions.get(c) for c in view.classes}
        args = (sample_id(ex.index), view.name, view.rgb, view.gt, view.pred, view.confidence, maps, notes, regions)
        probabilities = _explorer_probabilities(ex, view.rgb.shape[:2], names)
        return FigureJob(write_sample_data, self.layout.path(files.explorer), args, {"probabilities": probabilities})


def _explorer_probabilities(ex: Explained, display: tuple[int, int], names: list[str]) -> dict[str, np.ndarray] | None:
    """{class name: H×W float32} every class's probability at the explorer's size (xai.explorer.explorer_hw
    of the display copy's size), mapped as Presentation.view and write_sample_data map the confidence
    (nearest through the letterbox to the display size, then area-averaged down), so that at each pixel the
    predicted class's value is the confidence's; one class at a time, so that no C×H×W array of the display
    size exists and the job carries small maps only."""
    if ex.probabilities_input is None:
        return None
    small = explorer_hw(display)
    out = {}
    for name, p in zip(names, ex.probabilities_input, strict=True):
        v = ex.letterbox.to_size(p.astype(np.float32), display, nearest=True)
        out[name] = v if v.shape == small else cv2.resize(v, (small[1], small[0]), interpolation=cv2.INTER_AREA)
    return out
