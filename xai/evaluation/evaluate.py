"""--evaluate: every explained sample also gets the numbers of every declared metric.

Per sample, for each evaluated variant (the run's methods, --variants, and the reference maps) and
class, every metric registered in xai.evaluation.measures (deletion and insertion, ROAD, Average
Drop/Increase, localisation, the seconds a map took, and for fast variants the Pearson correlation
with the full variant's map). The samples at split positions 0..sanity_samples−1 also get the
cascading randomisation check (the same samples however the run is split over processes or resumed).
Maps are evaluated as the engines return them: at the model's input resolution, in [0, 1] on the
photograph's pixels V (xai.maps), 0 on padding. Regions R_c come from the unperturbed prediction, as
the engines define them for the run's region.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..batching import Batches
from ..data import IGNORE
from ..layers import model_device, preserved_state
from ..mapfile import as_stored
from ..methods import Attribution, Explainer, get_method
from ..metrics.references import probability_maps, random_smooth_maps, sobel_map
from ..metrics.registry import finite
from ..metrics.sanity import cascading_randomisation
from ..precision import prefers_channels_last
from ..targets import Region, region_masks
from .measures import Context, metrics
from .settings import EvaluationSettings
from .variants import Variant, full_counterparts

MODEL_FREE_BASELINE = "model-free baseline"  # the role of a reference every method should beat (report: marked)


@dataclass(frozen=True)
class Reference:
    """A map that every table shows beside the methods: what it is, its role, and how it is made for a sample.
    A reference of the role MODEL_FREE_BASELINE marks, in the report's tables and verdicts, every method that
    does not beat it (xai.evaluation.report)."""

    description: str
    role: str
    build: Callable[[Context], torch.Tensor]


REFERENCES = {
    "random": Reference(
        "a random smooth map (seeded)",
        "chance",
        lambda ctx: (
            random_smooth_maps((len(ctx.classes), *ctx.valid.shape), seed=ctx.settings.seed + ctx.index) * ctx.valid
        ),
    ),
    "probability": Reference(
        "the model's own predicted probability P_c",
        "the model's trivial explanation",
        lambda ctx: probability_maps(ctx.model, ctx.x, ctx.classes).cpu() * ctx.valid,
    ),
    "sobel": Reference(
        "the Sobel edge map of the photograph, the same for every class",
        MODEL_FREE_BASELINE,
        lambda ctx: (
            sobel_map(ctx.x, ctx.settings.pixel_mean, ctx.settings.pixel_std, ctx.valid)
            .cpu()
            .expand(len(ctx.classes), *ctx.valid.shape)
            .clone()
        ),
    ),
}


def baselines() -> list[str]:
    """The references of the role MODEL_FREE_BASELINE, by name."""
    return [name for name, r in REFERENCES.items() if r.role == MODEL_FREE_BASELINE]


@dataclass
class SampleEvaluation:
    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    sanity: dict[str, dict[str, Any]] = field(default_factory=dict)
    forwards: dict[str, int] = field(default_factory=dict)  # images run through the model, per metric
    seconds: float = 0.0  # the evaluation's wall time (maps of --variants included, sanity check included)

    def cost(self) -> dict[str, Any]:
        return {"forwards": dict(self.forwards), "seconds": self.seconds}


class Evaluator:
    """Evaluates the maps of one sample; engines are built once per run (`variants` → engines)."""

    def __init__(
        self,
        model: torch.nn.Module,
        engines: dict[str, Explainer],
        variants: list[Variant],
        class_ids: list[int],
        class_names: list[str],
        region: str | Region,
        settings: EvaluationSettings,
    ):
        self.model, self.engines, self.variants = model, engines, variants
        self.class_ids, self.class_names, self.region, self.settings = class_ids, class_names, region, settings
        self.methods = {v.label: v.method for v in variants}
        self.full_of = full_counterparts(variants)
        self.batches = Batches(settings.batch_size, "evaluation", "perturbed images", model_device(model))

    @property
    def batch_size(self) -> int:
        return self.batches.size

    def evaluate(
        self,
        index: int,
        x: torch.Tensor,
        gt: torch.Tensor | None,
        valid: torch.Tensor,
        results: dict[str, tuple[Attribution, float]],
    ) -> SampleEvaluation:
        """x: 1×3×H×W (padded input); gt: 1×H×W ids (padding and ignore labels IGNORE; None for a photograph
        without a mask: the metrics that need one give None, "no ground truth"); valid: H×W bool
        (the photograph; the metrics leave ignore-labelled pixels out as well); results:
        already computed (Attribution, seconds) by variant label (the run's figure methods), reused.

        The model stays in the memory layout measured faster (xai.precision) for all the forwards."""
        example = x[:1].expand(min(4, self.settings.batch_size or 4), -1, -1, -1)
        faster = prefers_channels_last(self.model, example, self.settings.eval_precision)
        with preserved_state(self.model, channels_last=faster):
            t0 = time.perf_counter()
            ev = self._evaluate(index, x, gt, valid, results)
            ev.seconds = time.perf_counter() - t0
            return ev

    def _context(
        self, index: int, x: torch.Tensor, gt: torch.Tensor | None, valid: torch.Tensor, results: dict[str, Any]
    ) -> tuple[Context, torch.Tensor]:
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
            maps[label] = as_stored(result.maps[0], self.settings.map_dtype).cpu()
            seconds[label] = secs
        assert prediction is not None
        truth = None if gt is None else gt.cpu()
        regions = region_masks(prediction.cpu(), truth, self.class_ids, self.region, len(self.class_names))[0]
        if truth is not None:  # ignore-labelled pixels are left out like padding
            valid = valid & (truth[0] != IGNORE).to(valid.device)
        ctx = Context(
            model=self.model,
            index=index,
            x=x,
            gt=None if truth is None else truth[0],
            valid=valid,
            classes=list(self.class_ids),
            regions=regions.bool() & valid,
            maps=maps,
            settings=self.settings,
            seconds=seconds,
            full_of=self.full_of,
            batches=self.batches,
            prediction=prediction[0].cpu(),
            families={label: get_method(method).family for label, method in self.methods.items()},
            engines=self.engines,
            class_names=[self.class_names[c] for c in self.class_ids],
        )
        for name, reference in REFERENCES.items():
            ctx.maps[name] = reference.build(ctx)
        return ctx, prediction

    def _evaluate(
        self, index: int, x: torch.Tensor, gt: torch.Tensor | None, valid: torch.Tensor, results: dict[str, Any]
    ) -> SampleEvaluation:
        ev = SampleEvaluation()
        ctx, prediction = self._context(index, x, gt, valid, results)
        names = [self.class_names[c] for c in self.class_ids]
        methods = {**self.methods, **{name: "reference" for name in REFERENCES}}
        for declared in metrics(ground_truth=None):  # each says what it gives without a ground truth
            if not declared.enabled(self.settings):
                continue
            for label, j, measure, value in declared.compute(ctx):
                v = finite(value.value)
                method = methods.get(label, declared.name)  # a row of no map (xai.evaluation.context): the metric's
                row = {"class": names[j], "method": method, "variant": label, "metric": measure}
                ev.rows.append({**row, "value": v, "reason": value.reason if v is None else None})
                if value.curve is not None:
                    ev.curves.setdefault(label, {}).setdefault(names[j], {})[value.curve[0]] = value.curve[1]
        ev.forwards = ctx.forwards()
        if index < self.settings.sanity_samples:
            for label, engine in self.engines.items():
                steps = cascading_randomisation(engine, x, self.class_ids, valid, prediction, seed=self.settings.seed)
                ev.sanity[label] = {
                    "steps": [s for s, _ in steps],
                    "rho": {names[j]: [finite(rho[j]) for _, rho in steps] for j in range(len(names))},
                }
        return ev
