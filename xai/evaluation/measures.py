"""The metrics of --evaluate: what it measures of every evaluated map and class, declared once.

Each is one decorated function of the evaluation context of a sample (`Context`), registered in the one
registry of metrics (xai.metrics.registry, which also holds summary.csv's columns). It declares its measures
(`Measure`: name, title, which direction is better, which table of the report shows it) and yields, per
evaluated map and class, the declared Measure object itself with its `Value` (value, reason when undefined,
curve if any), so that a measure's name is written once:

    ENERGY_POINTING_GAME = Measure("energy_pointing_game", "Energy pointing game", "higher")

    @metric(ENERGY_POINTING_GAME, cost="no forward pass")
    def energy(ctx):
        for label, j in ctx.each_map_and_class():
            res = energy_pointing_game(ctx.maps[label][j], ctx.truth(j), ctx.valid)
            yield label, j, ENERGY_POINTING_GAME, value_of(res.value, res.reason)

A metric declares what it needs of the ground truth (`truth`, xai.metrics.registry): "needed" (the default:
localisation, the object-size claims, error AUROC) gives None with the reason "no ground truth" on a
photograph without a mask (--images), "unused" (the perturbation metrics, the claims about the maps and
their regions, stability, seconds) is measured on every sample.

The evaluation runs every registered metric whose `enabled(settings)` holds; metrics.csv/json, the
report's tables and its paired differences list the measures in registration order. A metric of one
method's map that summary.csv also shows is declared once with the others of summary.csv (error AUROC, in
xai.metrics.segmentation) and measured here on every evaluated map; `evaluated_here` places it.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..labels import IGNORE
from ..mapfile import as_stored
from ..metrics import claims, removal, robustness
from ..metrics.faithfulness import NOT_POSITIVE, Faithfulness
from ..metrics.localisation import LocalisationResult, energy_pointing_game, pointing_game, relevance_rank_accuracy
from ..metrics.registry import Measure, Metric, Row, Value, evaluated_here, finite, measures, metric, metrics, value_of
from ..metrics.segmentation import uncertainty_metrics

__all__ = ["Context", "Measure", "Metric", "Value", "finite", "measures", "metric", "metrics", "value_of"]


@dataclass
class Context:
    """One sample's evaluation: x (1×3×H×W), gt (H×W ids; None for a photograph without a mask: only the
    metrics that need no ground truth read this context then), valid (H×W bool), classes (output ids),
    regions R_c (C'×H×W bool, from the unperturbed prediction, on V), maps {variant: C'×H×W in [0,1] on V,
    0 on padding}, seconds {variant: seconds its maps took}, full_of {fast variant: its full variant}."""

    model: torch.nn.Module
    index: int
    x: torch.Tensor
    gt: torch.Tensor | None
    valid: torch.Tensor
    classes: list[int]
    regions: torch.Tensor
    maps: dict[str, torch.Tensor]
    settings: Any
    seconds: dict[str, float] = field(default_factory=dict)
    full_of: dict[str, str] = field(default_factory=dict)
    batches: Any = None  # xai.batching.Batches shared by the run's evaluations
    prediction: torch.Tensor | None = None  # H×W ids of the unperturbed prediction
    families: dict[str, str] = field(default_factory=dict)  # variant -> its method's family
    engines: dict[str, Any] = field(default_factory=dict)  # variant -> its engine (metrics that explain again)
    class_names: list[str] = field(default_factory=list)  # the names of `classes`

    @functools.cached_property
    def faith(self) -> Faithfulness:
        """The perturbation metrics of this sample, sharing forward passes between them; they measure the
        run's score: the class's, or its contrast with other classes (settings.contrast, xai.contrast)."""
        return self._faithfulness(self.settings.contrast)

    @functools.cached_property
    def class_faith(self) -> Faithfulness:
        """The perturbation metrics on the classes' own scores (the same object as `faith` without a contrast)."""
        return self.faith if self.settings.contrast is None else self._faithfulness(None)

    def _faithfulness(self, contrast: int | str | None) -> Faithfulness:
        return Faithfulness(
            self.model,
            self.x,
            self.classes,
            self.regions,
            self.valid,
            batch_size=self.settings.batch_size,
            batches=self.batches,
            compile=self.settings.compile,
            cudnn_benchmark=self.settings.cudnn_benchmark,
            precision=self.settings.eval_precision,
            contrast=contrast,
        )

    def forwards(self) -> dict[str, int]:
        """The images every Faithfulness of this sample ran, per metric."""
        made = {id(f): f for f in (self.__dict__.get("faith"), self.__dict__.get("class_faith")) if f is not None}
        counts: Counter[str] = Counter()
        for faith in made.values():
            counts.update(faith.forwards)
        return dict(counts)

    def stored(self, maps: torch.Tensor) -> torch.Tensor:
        """maps on the host, rounded as the run's maps files store them (xai.mapfile.as_stored), so that a
        map made here compares with the run's own maps at the same resolution."""
        return as_stored(maps, self.settings.map_dtype).cpu()

    def truth(self, j: int) -> torch.Tensor:
        """GT_c ∩ V of the class at position j (for the metrics that need a ground truth)."""
        assert self.gt is not None, "a metric that reads the ground truth must declare truth='needed'"
        return (self.gt == self.classes[j]) & self.valid

    def each_map_and_class(self) -> Iterator[tuple[str, int]]:
        for label in self.maps:
            for j in range(len(self.classes)):
                yield label, j


# ---- the metrics of --evaluate ---------------------------------------------------------------------

CURVE_AUC = {
    ("deletion", "linear"): Measure("deletion_auc_linear", "Deletion AUC (linear)", "lower"),
    ("deletion", "area"): Measure("deletion_auc_area", "Deletion AUC (area)", "lower"),
    ("insertion", "linear"): Measure("insertion_auc_linear", "Insertion AUC (linear)", "higher"),
    ("insertion", "area"): Measure("insertion_auc_area", "Insertion AUC (area)", "higher"),
}


@metric(
    *CURVE_AUC.values(),
    cost="S − 1 forwards each per map and class (linear schedule), up to S more each (area schedule)",
    truth="unused",
)
def perturbation_curves(ctx: Context) -> Iterator[Row]:
    """Deletion and insertion (xai.metrics.faithfulness), both schedules, with their curves."""
    for schedule in ctx.settings.schedules:
        for kind in ("deletion", "insertion"):
            for label, per_class in getattr(ctx.faith, kind)(
                ctx.maps, steps=ctx.settings.steps, schedule=schedule
            ).items():
                for j, res in enumerate(per_class):
                    curve = (f"{kind}_{schedule}", [float(y) for y in res.curve[1]]) if res.curve is not None else None
                    yield label, j, CURVE_AUC[kind, schedule], value_of(res.auc, res.reason, curve)


ROAD_MORF = Measure("road_morf", "ROAD MoRF", "lower", table=None)
ROAD_LERF = Measure("road_lerf", "ROAD LeRF", "higher", table=None)
ROAD_GAP = Measure("road_gap", "ROAD LeRF−MoRF", "higher")


@metric(
    ROAD_MORF,
    ROAD_LERF,
    ROAD_GAP,
    cost="2 × 9 imputations and forwards per map and class",
    enabled=lambda settings: settings.road,
    truth="unused",
)
def road(ctx: Context) -> Iterator[Row]:
    """ROAD with noisy linear imputation at the percentiles 10..90."""
    results = ctx.faith.road(ctx.maps, noise=ctx.settings.road_noise, seed=ctx.settings.seed + ctx.index)
    for label, per_class in results.items():
        for j, res in enumerate(per_class):
            yield label, j, ROAD_MORF, value_of(res.morf, res.reason)
            yield label, j, ROAD_LERF, value_of(res.lerf, res.reason)
            yield label, j, ROAD_GAP, value_of(res.gap, res.reason)


AVERAGE_DROP = Measure("average_drop", "Avg Drop %", "lower")
AVERAGE_INCREASE = Measure("average_increase", "Avg Increase %", "higher")


@metric(AVERAGE_DROP, AVERAGE_INCREASE, cost="1 forward per map and class", truth="unused")
def average_drop_increase(ctx: Context) -> Iterator[Row]:
    """Average Drop and Average Increase (Chattopadhay et al. 2018)."""
    for label, per_class in ctx.faith.average_drop_increase(ctx.maps).items():
        for j, res in enumerate(per_class):
            yield label, j, AVERAGE_DROP, value_of(res.drop, res.reason)
            yield label, j, AVERAGE_INCREASE, value_of(res.increase, res.reason)


ENERGY_POINTING_GAME = Measure("energy_pointing_game", "Energy pointing game", "higher")
_LOCALISATION: tuple[tuple[Measure, Callable[..., LocalisationResult]], ...] = (
    (ENERGY_POINTING_GAME, energy_pointing_game),
    (Measure("pointing_game", "Pointing game", "higher"), pointing_game),
    (Measure("rank_accuracy", "Rank accuracy", "higher"), relevance_rank_accuracy),
)


@metric(*(measure for measure, _ in _LOCALISATION), cost="no forward pass", truth="needed")
def localisation(ctx: Context) -> Iterator[Row]:
    """The maps against the ground truth (xai.metrics.localisation)."""
    for label, j in ctx.each_map_and_class():
        for measure, fn in _LOCALISATION:
            res = fn(ctx.maps[label][j], ctx.truth(j), ctx.valid)
            yield label, j, measure, value_of(res.value, res.reason)


SECONDS = Measure("seconds", "Seconds / sample", "lower")


@metric(SECONDS, cost="none (the time each method's maps took)", truth="unused")
def seconds(ctx: Context) -> Iterator[Row]:
    """What a sample's maps cost, per method and variant (references have none)."""
    for label, secs in ctx.seconds.items():
        for j in range(len(ctx.classes)):
            yield label, j, SECONDS, Value(float(secs))


PEARSON_VS_FULL = Measure("pearson_vs_full", "Pearson r vs full", "higher", table="fast", digits=4)


@metric(PEARSON_VS_FULL, cost="no forward pass", truth="unused")
def pearson_vs_full(ctx: Context) -> Iterator[Row]:
    """A fast variant's map against its full variant's (same settings, every channel), over V."""
    for fast, full in ctx.full_of.items():
        for j in range(len(ctx.classes)):
            a, b = ctx.maps[fast][j][ctx.valid], ctx.maps[full][j][ctx.valid]
            if a.std() > 0 and b.std() > 0:
                yield fast, j, PEARSON_VS_FULL, Value(float(torch.corrcoef(torch.stack([a, b]))[0, 1]))
            else:
                yield fast, j, PEARSON_VS_FULL, Value(None, "a constant map (nothing to correlate)")


# error_auroc: a summary.csv column of uncertainty maps (xai.metrics.segmentation), measured by --evaluate
# on every evaluated uncertainty map on the photograph, listed here
evaluated_here(uncertainty_metrics)


# ---- the claims papers make for one method over another (xai.metrics.claims) ------------------------------

ZERO = "the map is 0 on every pixel of the photograph"
COMPLEXITY = Measure("complexity", "Complexity", "lower", table="claims")
SPARSENESS = Measure("sparseness", "Sparseness (Gini)", "higher", table="claims")


@metric(COMPLEXITY, SPARSENESS, cost="no forward pass", truth="unused")
def noise(ctx: Context) -> Iterator[Row]:
    """How noisy a map is: the entropy of its normalised values and their Gini index."""
    for label, j in ctx.each_map_and_class():
        m = ctx.maps[label][j]
        yield label, j, COMPLEXITY, value_of(claims.complexity(m, ctx.valid), ZERO)
        yield label, j, SPARSENESS, value_of(claims.sparseness(m, ctx.valid), ZERO)


RING_RATIO = Measure("ring_ratio", "Inside / ring", "higher", table="claims")
RING_SHARE = Measure("ring_share", "Ring's share", "lower", table="claims")


@metric(RING_RATIO, RING_SHARE, cost="no forward pass", truth="unused")
def boundary(ctx: Context) -> Iterator[Row]:
    """Boundary precision: the map inside R_c against a ring of ring_width pixels just outside it."""
    reason = "an empty region, an empty ring or a zero map"
    for label, j in ctx.each_map_and_class():
        ratio, share = claims.ring(ctx.maps[label][j], ctx.regions[j], ctx.valid, ctx.settings.ring_width)
        if ratio is not None and math.isinf(ratio):
            yield label, j, RING_RATIO, Value(None, "unbounded: no energy in the ring")
        else:
            yield label, j, RING_RATIO, value_of(ratio, reason)
        yield label, j, RING_SHARE, value_of(share, reason)


ENERGY_OUTSIDE = Measure("energy_outside", "Energy outside the region", None, table="claims")
CONTEXT_DELETION_AUC = Measure("context_deletion_auc", "Context deletion AUC", "lower", table="claims")


@metric(
    ENERGY_OUTSIDE,
    CONTEXT_DELETION_AUC,
    cost="S forwards per map and class (deletion of the region's surroundings only)",
    truth="unused",
)
def context(ctx: Context) -> Iterator[Row]:
    """How much of the map, and of the class's score, is about what surrounds the class."""
    for label, j in ctx.each_map_and_class():
        value = claims.outside_share(ctx.maps[label][j], ctx.regions[j], ctx.valid)
        yield label, j, ENERGY_OUTSIDE, value_of(value, ZERO)
    for label, per_class in ctx.faith.context_deletion(ctx.maps, steps=ctx.settings.steps).items():
        for j, res in enumerate(per_class):
            yield label, j, CONTEXT_DELETION_AUC, value_of(res.auc, res.reason)


_SIZES = ("small", "medium", "large")
EPG_BY_SIZE = {s: Measure(f"energy_pointing_game_{s}", f"Energy PG, {s} objects", "higher", "claims") for s in _SIZES}
RANK_BY_SIZE = {s: Measure(f"rank_accuracy_{s}", f"Rank acc., {s} objects", "higher", "claims") for s in _SIZES}


@metric(*EPG_BY_SIZE.values(), *RANK_BY_SIZE.values(), cost="no forward pass", truth="needed")
def object_size(ctx: Context) -> Iterator[Row]:
    """Localisation of the ground truth's components binned by area (small: seeds)."""
    for j in range(len(ctx.classes)):
        truth = ctx.truth(j)
        bins = claims.component_bins(truth, ctx.settings.size_bins)
        for label in ctx.maps:
            for size, part in zip(_SIZES, bins, strict=True):
                epg, rank = claims.size_localisation(ctx.maps[label][j], truth, part, ctx.valid)
                reason = f"no {size} object of the class in the ground truth"
                yield label, j, EPG_BY_SIZE[size], value_of(epg, reason)
                yield label, j, RANK_BY_SIZE[size], value_of(rank, reason)


def _fixed_region(engine: Any) -> Any:
    """The same method with the region fixed to a given mask (region "gt", gt = the mask)."""
    from ..metrics.sanity import same_engine

    return same_engine(engine, engine.model, region="gt")


def _noisy_maps(ctx: Context, engine: Any, noises: list[torch.Tensor]) -> list[torch.Tensor]:
    """The engine's maps (C'×H×W, stored) of each noisy copy x + ε, its regions fixed to the unperturbed
    prediction (a map must not change because the prediction did)."""
    fixed, v = _fixed_region(engine), ctx.valid.to(ctx.x.device)[None]
    assert ctx.prediction is not None
    gt = ctx.prediction[None].to(ctx.x.device)
    return [ctx.stored(fixed.explain(ctx.x + e, classes=ctx.classes, gt=gt, valid=v).maps[0]) for e in noises]


MAX_SENSITIVITY = Measure("max_sensitivity", "Max-sensitivity", "lower", table="claims")
NOISE_SPEARMAN = Measure("noise_spearman", "Spearman under noise", "higher", table="claims")


@metric(
    MAX_SENSITIVITY,
    NOISE_SPEARMAN,
    cost="stability_samples more explanations per method (the maps of noisy copies)",
    enabled=lambda settings: settings.stability_samples > 0,
    truth="unused",
)
def stability(ctx: Context) -> Iterator[Row]:
    """The maps of n seeded noisy copies x + ε (ε ~ U(±r) on the photograph) against the map of x, with
    the regions fixed to the unperturbed prediction; the same noise for every method."""
    if ctx.prediction is None:
        return
    g = torch.Generator().manual_seed(ctx.settings.seed + ctx.index)
    r, v = ctx.settings.stability_radius, ctx.valid.to(ctx.x.device)
    noise_ = [
        (torch.rand(ctx.x.shape, generator=g) * 2 - 1).to(ctx.x.device) * r * v
        for _ in range(ctx.settings.stability_samples)
    ]
    for label, engine in ctx.engines.items():
        noisy = _noisy_maps(ctx, engine, noise_)
        for j in range(len(ctx.classes)):
            change, rho = claims.max_sensitivity([m[j] for m in noisy], ctx.maps[label][j], ctx.valid)
            yield label, j, MAX_SENSITIVITY, value_of(change, ZERO)
            yield label, j, NOISE_SPEARMAN, value_of(rho, "constant maps (nothing to correlate)")


MIN_INSTANCE = 16  # pixels at the input: smaller fragments of a region are not instances
INSTANCE_SHARE = Measure("instance_share", "Instance share", "higher", table="claims")


@metric(
    INSTANCE_SHARE,
    cost="one more explanation per component of a class's region (at most 5 per class, of 16 pixels or more)",
    enabled=lambda settings: settings.instances,
    truth="unused",
)
def instances(ctx: Context) -> Iterator[Row]:
    """Each connected component K of a class's region explained on its own (its own region score): the
    share of that map's energy on K among the class's components; the mean over the components."""
    import cv2

    for j, c in enumerate(ctx.classes):
        region = ctx.regions[j].numpy().astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        kept = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= MIN_INSTANCE]
        if len(kept) < 2:
            for label in ctx.engines:
                yield label, j, INSTANCE_SHARE, Value(None, "fewer than two components (of 16 px or more)")
            continue
        largest = sorted(kept, key=lambda k: -stats[k, cv2.CC_STAT_AREA])[:5]
        components = torch.from_numpy(region > 0)
        for label, engine in ctx.engines.items():
            fixed, shares = _fixed_region(engine), []
            for k in largest:
                part = torch.from_numpy(labels == k)
                gt = torch.where(part, c, IGNORE).to(ctx.x.device)[None]
                m = ctx.stored(fixed.explain(ctx.x, classes=[c], gt=gt, valid=ctx.valid[None]).maps[0, 0])
                share = claims.instance_share(m, part, components)
                if share is not None:
                    shares.append(share)
            yield label, j, INSTANCE_SHARE, value_of(np.mean(shares) if shares else None, ZERO)


# ---- the metrics of Quantus that the others do not cover (xai.metrics.removal, xai.metrics.robustness) ------


def _quantus_metrics(settings: Any) -> bool:
    return bool(settings.quantus_metrics)


@contextlib.contextmanager
def _forwards_counted(ctx: Context, name: str, model: torch.nn.Module) -> Iterator[None]:
    """Add the images `model` runs within the block to ctx.faith.forwards[name] (a forward hook; the
    forwards of a compiled module outside it are not seen)."""
    seen = [0]

    def count(_module: Any, inputs: Any, _output: Any) -> None:
        seen[0] += int(inputs[0].shape[0]) if inputs and hasattr(inputs[0], "shape") else 1

    faith = ctx.faith
    handle = model.register_forward_hook(count)
    try:
        yield
    finally:
        handle.remove()
        faith.forwards[name] = faith.forwards.get(name, 0) + seen[0]


def _removing(x: torch.Tensor, masks: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
    """build(a, b) for Faithfulness._scores: x with the pixels of masks[a:b] (K×H×W bool) set to 0 in all
    channels."""
    on = masks.to(x.device)[:, None]
    return lambda a, b: torch.where(on[a:b], 0.0, x)


FAITHFULNESS_CORRELATION = Measure("faithfulness_correlation", "Faithfulness correlation", "higher")


@metric(
    FAITHFULNESS_CORRELATION,
    cost="correlation_runs forwards per sample (the same random subsets for every map and class)",
    enabled=_quantus_metrics,
    truth="unused",
)
def faithfulness_correlation(ctx: Context) -> Iterator[Row]:
    """Faithfulness Correlation (xai.metrics.removal): random subsets of the photograph removed."""
    s = ctx.settings
    subsets = removal.random_subsets(ctx.valid, s.correlation_runs, s.correlation_subset, s.seed + ctx.index)
    faith = ctx.faith
    scores = faith._scores("faithfulness_correlation", len(subsets), _removing(faith.x, subsets))
    for label, j in ctx.each_map_and_class():
        if faith.area[j] == 0:
            yield label, j, FAITHFULNESS_CORRELATION, Value(None, "class absent from its region")
            continue
        r = removal.faithfulness_correlation(ctx.maps[label][j], subsets, float(faith.y[j]), scores[:, j])
        yield label, j, FAITHFULNESS_CORRELATION, value_of(r, "constant attribution sums or score changes")


IROF = Measure("irof", "IROF", "higher")


@metric(IROF, cost="K forwards per map and class (K superpixels)", enabled=_quantus_metrics, truth="unused")
def irof(ctx: Context) -> Iterator[Row]:
    """IROF (xai.metrics.removal): superpixels removed by the map's order."""
    faith = ctx.faith
    segments = removal.superpixels(ctx.x[0], ctx.valid, ctx.settings.irof_segments)
    for label, j in ctx.each_map_and_class():
        if faith.area[j] == 0:
            yield label, j, IROF, Value(None, "class absent from its region")
            continue
        masks = removal.removal_masks(segments, removal.segment_order(ctx.maps[label][j], segments))
        scores = faith._scores("irof", len(masks), _removing(faith.x, masks))
        yield label, j, IROF, value_of(removal.irof(float(faith.y[j]), scores[:, j]), NOT_POSITIVE)


RANDOM_LOGIT = Measure("random_logit", "Random logit SSIM", "lower", table="claims")


@metric(
    RANDOM_LOGIT,
    cost="1 more explanation per class and method (another class's score over the class's region)",
    enabled=_quantus_metrics,
    truth="unused",
)
def random_logit(ctx: Context) -> Iterator[Row]:
    """Random Logit (xai.metrics.robustness): the map of c against the map of a random other evaluated class
    c' explaining the same region R_c (the seeded draw is the same for every method)."""
    rng = np.random.default_rng([ctx.settings.seed, ctx.index])
    others = [rng.choice([c for c in ctx.classes if c != own]) if len(ctx.classes) > 1 else None for own in ctx.classes]
    v = ctx.valid.to(ctx.x.device)[None]
    for label, engine in ctx.engines.items():
        fixed = _fixed_region(engine)
        with _forwards_counted(ctx, "random_logit", engine.model):
            for j, other in enumerate(others):
                if other is None or not bool(ctx.regions[j].any()):
                    reason = "no other class" if other is None else "class absent from its region"
                    yield label, j, RANDOM_LOGIT, Value(None, reason)
                    continue
                gt = torch.where(ctx.regions[j], int(other), IGNORE).to(ctx.x.device)[None]
                m = ctx.stored(fixed.explain(ctx.x, classes=[int(other)], gt=gt, valid=v).maps[0, 0])
                yield label, j, RANDOM_LOGIT, value_of(robustness.ssim(ctx.maps[label][j], m), "constant maps")


LOCAL_LIPSCHITZ = Measure("local_lipschitz", "Local Lipschitz estimate", "lower", table="claims")


@metric(
    LOCAL_LIPSCHITZ,
    cost="lipschitz_samples more explanations per method (the maps of noisy copies)",
    enabled=_quantus_metrics,
    truth="unused",
)
def local_lipschitz(ctx: Context) -> Iterator[Row]:
    """The Local Lipschitz estimate (xai.metrics.robustness): n seeded Gaussian copies x + ε (ε on the
    photograph), the regions fixed to the unperturbed prediction; the same noise for every method."""
    if ctx.prediction is None:
        return
    g = torch.Generator().manual_seed(ctx.settings.seed + ctx.index + 1)
    v = ctx.valid.to(ctx.x.device)
    noises = [
        (torch.randn(ctx.x.shape, generator=g) * ctx.settings.lipschitz_std).to(ctx.x.device) * v
        for _ in range(ctx.settings.lipschitz_samples)
    ]
    for label, engine in ctx.engines.items():
        with _forwards_counted(ctx, "local_lipschitz", engine.model):
            noisy = _noisy_maps(ctx, engine, noises)
        for j in range(len(ctx.classes)):
            value = robustness.local_lipschitz([m[j] for m in noisy], noises, ctx.maps[label][j], ctx.valid)
            yield label, j, LOCAL_LIPSCHITZ, value_of(value, "no noisy copy")


# the context-dependence matrix of the model (a metric of its own file, registered here: after the maps' metrics)
from . import context as _context  # noqa: E402, F401
