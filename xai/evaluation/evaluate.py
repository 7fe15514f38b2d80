"""--evaluate: every explained sample also gets its faithfulness and localisation numbers.

Per sample, for each evaluated variant (the run's methods, --variants, and the two reference maps) and
class: deletion and insertion AUC (linear and area schedules) with their curves, ROAD, Average
Drop/Increase, the energy pointing game, the pointing game and relevance rank accuracy against the
ground truth, the seconds the map took, and for fast Score-CAM variants the Pearson correlation with
the full variant's map. The samples at split positions 0..sanity_samples−1 also get the cascading
randomisation check (the same samples however the run is split over processes or resumed). Maps are
evaluated at the model's input resolution on the photograph's pixels V (padding excluded), min-max
scaled over V. Regions R_c come from the unperturbed prediction, as the engines define them for the
run's --region.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..layers import preserved_state
from ..methods import BaseCAM, CAMResult
from ..metrics.faithfulness import Faithfulness
from ..metrics.localisation import energy_pointing_game, pointing_game, relevance_rank_accuracy
from ..metrics.references import probability_maps, random_smooth_maps
from ..metrics.sanity import cascading_randomisation
from ..precision import prefers_channels_last
from ..targets import region_masks
from .variants import Variant, full_counterparts

REFERENCES = {"random": "a random smooth map (seeded)", "probability": "the model's own predicted probability P_c"}


@dataclass
class EvaluationSettings:
    steps: int = 50
    schedules: tuple[str, ...] = ("linear", "area")
    road: bool = True
    sanity_samples: int = 2
    batch_size: int = 32
    seed: int = 0
    road_noise: float = 0.01  # in normalised units; the authors' 0.01 on [0, 1] images is 0.01 / std

    def describe(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "schedules": list(self.schedules),
            "road": self.road,
            "road_noise": self.road_noise,
            "sanity_samples": self.sanity_samples,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


@dataclass
class SampleEvaluation:
    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    sanity: dict[str, dict[str, Any]] = field(default_factory=dict)
    forwards: dict[str, int] = field(default_factory=dict)  # images run through the model, per metric
    seconds: float = 0.0  # the evaluation's wall time (maps of --variants included, sanity check included)

    def cost(self) -> dict[str, Any]:
        return {"forwards": dict(self.forwards), "seconds": self.seconds}


def _clean(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _scaled_on_valid(raw: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """C'×H×W maps min-max scaled over the valid pixels, 0 on padding; constant maps become 0."""
    out = torch.zeros_like(raw)
    v = valid.bool()
    for j in range(raw.shape[0]):
        vals = raw[j][v]
        lo, hi = vals.min(), vals.max()
        if hi > lo:
            out[j][v] = (vals - lo) / (hi - lo)
    return out


class Evaluator:
    """Evaluates the maps of one sample; engines are built once per run (`variants` → engines)."""

    def __init__(
        self,
        model: torch.nn.Module,
        engines: dict[str, BaseCAM],
        variants: list[Variant],
        class_ids: list[int],
        class_names: list[str],
        region: str,
        settings: EvaluationSettings,
    ):
        self.model, self.engines, self.variants = model, engines, variants
        self.class_ids, self.class_names, self.region, self.settings = class_ids, class_names, region, settings
        self.methods = {v.label: v.method for v in variants}
        self.full_of = full_counterparts(variants)
        self.batch_size = settings.batch_size  # lowered for the rest of the run after an out-of-memory error

    def evaluate(
        self,
        index: int,
        x: torch.Tensor,
        gt: torch.Tensor,
        valid: torch.Tensor,
        results: dict[str, tuple[CAMResult, float]],
    ) -> SampleEvaluation:
        """x: 1×3×H×W (padded input); gt: 1×H×W ids (padding IGNORE); valid: H×W bool; results:
        already computed (CAMResult, seconds) by variant label (the run's figure methods), reused.

        The model stays in the memory layout measured faster (xai.precision) for all the forwards."""
        example = x[:1].expand(min(4, self.settings.batch_size), -1, -1, -1)
        with preserved_state(self.model, channels_last=prefers_channels_last(self.model, example, "fp32")):
            t0 = time.perf_counter()
            ev = self._evaluate(index, x, gt, valid, results)
            ev.seconds = time.perf_counter() - t0
            return ev

    def _evaluate(
        self,
        index: int,
        x: torch.Tensor,
        gt: torch.Tensor,
        valid: torch.Tensor,
        results: dict[str, tuple[CAMResult, float]],
    ) -> SampleEvaluation:
        ev = SampleEvaluation()
        names = [self.class_names[c] for c in self.class_ids]
        maps: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        prediction = None
        for label, engine in self.engines.items():
            if label in results:
                result, secs = results[label]
            else:
                t0 = time.perf_counter()
                result = engine.explain(x, classes=self.class_ids, gt=gt, valid=valid[None])
                secs = time.perf_counter() - t0
            prediction = result.prediction if prediction is None else prediction
            maps[label] = _scaled_on_valid(result.raw[0].float().cpu(), valid)
            seconds[label] = secs
        assert prediction is not None
        regions = (
            region_masks(prediction.cpu(), gt.cpu(), self.class_ids, self.region, len(self.class_names))[0]
            * valid.float()
        ).bool()
        maps["random"] = (
            random_smooth_maps((len(self.class_ids), *valid.shape), seed=self.settings.seed + index) * valid
        )
        maps["probability"] = probability_maps(self.model, x, self.class_ids).cpu() * valid
        methods = {**self.methods, "random": "reference", "probability": "reference"}

        def add(label: str, j: int, metric: str, value: Any, reason: str | None = None) -> None:
            v = _clean(value)
            ev.rows.append(
                {
                    "class": names[j],
                    "method": methods[label],
                    "variant": label,
                    "metric": metric,
                    "value": v,
                    "reason": reason if v is None else None,
                }
            )

        faith = Faithfulness(self.model, x, self.class_ids, regions, valid, batch_size=self.batch_size)
        for schedule in self.settings.schedules:
            for kind in ("deletion", "insertion"):
                per_map = getattr(faith, kind)(maps, steps=self.settings.steps, schedule=schedule)
                for label, per_class in per_map.items():
                    for j, res in enumerate(per_class):
                        add(label, j, f"{kind}_auc_{schedule}", res.auc, res.reason)
                        if res.curve is not None:
                            ev.curves.setdefault(label, {}).setdefault(names[j], {})[f"{kind}_{schedule}"] = [
                                float(y) for y in res.curve[1]
                            ]
        if self.settings.road:
            for label, per_class in faith.road(
                maps, noise=self.settings.road_noise, seed=self.settings.seed + index
            ).items():
                for j, res in enumerate(per_class):
                    add(label, j, "road_morf", res.morf, res.reason)
                    add(label, j, "road_lerf", res.lerf, res.reason)
                    add(label, j, "road_gap", res.gap, res.reason)
        for label, per_class in faith.average_drop_increase(maps).items():
            for j, res in enumerate(per_class):
                add(label, j, "average_drop", res.drop, res.reason)
                add(label, j, "average_increase", res.increase, res.reason)
        for label, m in maps.items():
            for j, c in enumerate(self.class_ids):
                truth = (gt[0].cpu() == c) & valid
                for metric, fn in (
                    ("energy_pointing_game", energy_pointing_game),
                    ("pointing_game", pointing_game),
                    ("rank_accuracy", relevance_rank_accuracy),
                ):
                    res = fn(m[j], truth, valid)
                    add(label, j, metric, res.value, res.reason)
            if label in seconds:
                for j in range(len(self.class_ids)):
                    add(label, j, "seconds", seconds[label])
        for fast, full in self.full_of.items():
            for j in range(len(self.class_ids)):
                a, b = maps[fast][j][valid], maps[full][j][valid]
                if a.std() > 0 and b.std() > 0:
                    add(fast, j, "pearson_vs_full", torch.corrcoef(torch.stack([a, b]))[0, 1].item())
                else:
                    add(fast, j, "pearson_vs_full", None, "a constant map (nothing to correlate)")
        ev.forwards = dict(faith.forwards)
        self.batch_size = faith.batch_size
        if index < self.settings.sanity_samples:
            for label, engine in self.engines.items():
                steps = cascading_randomisation(engine, x, self.class_ids, valid, prediction, seed=self.settings.seed)
                ev.sanity[label] = {
                    "steps": [s for s, _ in steps],
                    "rho": {names[j]: [_clean(rho[j]) for _, rho in steps] for j in range(len(names))},
                }
        return ev
