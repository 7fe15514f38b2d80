"""The one registry of metrics: the columns of summary.csv and the measures of --evaluate (metrics.csv/json,
the report), each declared once.

A metric is one decorated function. It declares its measures, `Measure(name, title, better, table)`: the
name (summary.csv's column, "<method>_<name>" for a map's; metrics.csv's metric), the report's title, which
direction is better (the report's arrows, bold winners and paired differences) and the tables that show it
("summary": summary.csv; "main", "fast", "claims": the report's; None: metrics.csv/json only; a tuple for
several). It gives each measure a `Value` keyed by the declared Measure object itself, so that the name is
written once. What it is a function of is its `per`:

    "sample"  fn(ctx) yields (variant, j, Measure, Value) per evaluated map and class position j, for
              --evaluate (ctx: the sample's xai.evaluation.measures.Context)
    "class"   fn(gt, pred, class_id, confidence) -> {Measure: Value}: the prediction's quality (summary.csv);
              confidence() gives the H×W probability the model gives its predicted class at each pixel
              (computed when first asked; None where the caller has none)
    "map"     fn(cam, gt, pred, class_id) -> {Measure: Value}: one method's map (summary.csv, for every
              method or only those of `family`); its measures not of summary.csv alone are also
              measured by --evaluate on every evaluated map, on the photograph (gt and pred IGNORE off it)

and what it needs of the ground truth is its `truth`: "needed" (the default) is measured only on samples
with a mask (photographs without one, --images: summary.csv leaves its columns out, --evaluate gives None
with the reason "no ground truth"); "unused" on every sample (gt is None where there is no mask); "absent"
only on samples without a mask (the numbers of the prediction that stand in for IoU and Dice there).

For instance a measure of --evaluate:

    MAP_MEAN = Measure("map_mean", "Mean of the map", "lower")

    @metric(MAP_MEAN, cost="no forward pass")
    def map_mean(ctx):
        for label, j in ctx.each_map_and_class():
            yield label, j, MAP_MEAN, Value(float(ctx.maps[label][j][ctx.valid].mean()))

summary.csv, metrics.csv/json and the report list the measures in registration order; `evaluated_here`
moves a metric declared earlier (a map metric of xai.metrics.segmentation) to where --evaluate lists it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import numpy as np

from ..labels import IGNORE

__all__ = [
    "NO_TRUTH",
    "SUMMARY",
    "Confidence",
    "Measure",
    "Metric",
    "Row",
    "Value",
    "evaluated_here",
    "finite",
    "measures",
    "metric",
    "metrics",
    "no_confidence",
    "summary_columns",
    "value_of",
]

SUMMARY = "summary"  # the table of summary.csv's columns
Per = Literal["sample", "class", "map"]  # what a metric is a function of (see above)
PER: tuple[str, ...] = get_args(Per)
Truth = Literal["needed", "unused", "absent"]  # what a metric needs of the ground truth (see above)
TRUTH: tuple[str, ...] = get_args(Truth)
NO_TRUTH = "no ground truth"  # the reason of a measure that needs one, on a photograph without a mask
Confidence = Callable[[], np.ndarray | None]  # a "class" metric's probabilities of the predicted classes


def no_confidence() -> None:
    """The confidence of a caller that has no probabilities."""
    return None


@dataclass(frozen=True)
class Measure:
    """name: the column of summary.csv or the metric of metrics.csv; title: the report's column; better:
    "higher", "lower" or None (not ranked); table: where it is shown, one or a tuple of "summary"
    (summary.csv), "main" (the report's per-class tables and paired differences), "fast" (the fast
    variants' table), "claims", or None (metrics.csv/json only)."""

    name: str
    title: str
    better: str | None
    table: str | tuple[str, ...] | None = "main"
    digits: int = 3

    @property
    def tables(self) -> tuple[str, ...]:
        if self.table is None:
            return ()
        return (self.table,) if isinstance(self.table, str) else self.table

    @property
    def report_table(self) -> str | None:
        """The report's table ("main", "fast", "claims"), None when the report shows it in none."""
        return next((t for t in self.tables if t != SUMMARY), None)

    @property
    def in_metrics_csv(self) -> bool:
        """Whether --evaluate writes it (every measure but those of summary.csv alone)."""
        return self.tables != (SUMMARY,)


@dataclass
class Value:
    """One measured number; None with the reason when it does not exist; a named curve if any."""

    value: float | None
    reason: str | None = None  # why value is None (ignored when it is not)
    curve: tuple[str, list[float]] | None = None


Row = tuple[str, int, Measure, Value]  # (variant label, position j of the class, measure, value)


def finite(value: Any) -> float | None:
    """value as a float; None for None, NaN and ±inf."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def value_of(number: Any, reason: str | None = None, curve: tuple[str, list[float]] | None = None) -> Value:
    """A Value from a number that may be NaN (then the reason stays)."""
    v = finite(number)
    return Value(v, None if v is not None else reason, curve if v is not None else None)


@dataclass(frozen=True)
class Metric:
    name: str
    measures: tuple[Measure, ...]
    fn: Callable[..., Any]  # per "sample": fn(ctx) -> Iterable[Row]; "class"/"map": fn(...) -> {Measure: Value}
    per: Per
    cost: str  # forward passes it needs, in words (docs/faithfulness.md, the report)
    enabled: Callable[[Any], bool]
    family: str | None = None  # a "map" metric of the methods of this family only
    truth: Truth = "needed"  # what it needs of the ground truth (see the module's docstring)

    def applies_to(self, family: str | None) -> bool:
        return self.family is None or self.family == family

    def measured(self, ground_truth: bool | None) -> bool:
        """Whether it is measured on samples with (True) or without (False) a ground truth; None: always."""
        if ground_truth is None:
            return True
        return self.truth != ("absent" if ground_truth else "needed")

    def values(self, *arrays: Any) -> dict[Measure, Value]:
        """A "class" or "map" metric's values in declaration order (a "map" metric's are None without a map)."""
        if self.per == "map" and arrays[0] is None:
            return {m: Value(None, "no map") for m in self.measures}
        got = dict(self.fn(*arrays))
        if set(got) != set(self.measures):
            names = sorted(getattr(m, "name", repr(m)) for m in got)
            raise ValueError(f"metric {self.name} gave {names}, not the measures it declares")
        return {m: got[m] for m in self.measures}

    def compute(self, ctx: Any) -> Iterator[tuple[str, int, str, Value]]:
        """Its rows of metrics.csv for one evaluated sample: (variant, j, measure name, value). On a sample
        without a ground truth (ctx.gt None) a metric that needs one gives None ("no ground truth") for
        every map and class it measures; one that is only measured without it gives nothing with it."""
        rows: Iterable[Row] = ()
        if not self.measured(_has_truth(ctx)):
            rows = self._without_truth(ctx) if self.truth == "needed" else ()
        elif self.per == "sample":
            rows = self.fn(ctx)
        elif self.per == "map" and any(m.in_metrics_csv for m in self.measures):
            rows = self._on_each_map(ctx)
        for label, j, measure, value in rows:
            if measure not in self.measures:
                raise ValueError(f"metric {self.name} yielded {measure!r}, not one of the Measure objects it declares")
            if measure.in_metrics_csv:
                yield label, j, measure.name, value

    def _without_truth(self, ctx: Any) -> Iterator[Row]:
        """None ("no ground truth") for each of its measures of every evaluated map (of its family) and class."""
        for label, j in ctx.each_map_and_class():
            if self.per == "sample" or self.applies_to(ctx.families.get(label)):
                for measure in self.measures:
                    yield label, j, measure, Value(None, NO_TRUTH)

    def _on_each_map(self, ctx: Any) -> Iterator[Row]:
        """A "map" metric on the photograph of every evaluated map of its family (ctx.valid: gt and the
        prediction are IGNORE elsewhere)."""
        if ctx.prediction is None:
            return
        valid = ctx.valid.numpy()
        gt = None if ctx.gt is None else np.where(valid, ctx.gt.numpy(), IGNORE)
        pred = np.where(valid, ctx.prediction.numpy(), IGNORE)
        for label, j in ctx.each_map_and_class():
            if self.applies_to(ctx.families.get(label)):
                for measure, value in self.values(ctx.maps[label][j].numpy(), gt, pred, ctx.classes[j]).items():
                    yield label, j, measure, value


def _has_truth(ctx: Any) -> bool:
    """Whether an evaluation context has a ground truth (ctx.gt; a context without the attribute does)."""
    return getattr(ctx, "gt", True) is not None


_METRICS: dict[str, Metric] = {}
F = TypeVar("F", bound=Callable[..., Any])


def _check(new: Metric) -> None:
    if new.per not in PER:
        raise ValueError(f"metric {new.name}: per must be one of {', '.join(PER)}, got {new.per!r}")
    if new.truth not in TRUTH:
        raise ValueError(f"metric {new.name}: truth must be one of {', '.join(TRUTH)}, got {new.truth!r}")
    for m in new.measures:
        if (SUMMARY in m.tables) != (new.per != "sample") or (new.per == "class" and m.tables != (SUMMARY,)):
            raise ValueError(f"metric {new.name} (per {new.per}): measure {m.name} in the tables {m.tables}")
    taken = {m.name for other in _METRICS.values() if other.name != new.name for m in other.measures}
    clash = sorted(taken & {m.name for m in new.measures})
    if clash:
        raise ValueError(f"measure(s) {', '.join(clash)} already declared by another metric")


def metric(
    *declared: Measure,
    cost: str = "no forward pass",
    per: Per = "sample",
    family: str | None = None,
    enabled: Callable[[Any], bool] = lambda settings: True,
    truth: Truth = "needed",
) -> Callable[[F], F]:
    """Register the decorated function as a metric of the declared measures (per: what it is a function of,
    truth: what it needs of the ground truth, see the module's docstring; family: a "map" metric of that
    family's methods only)."""

    def decorate(fn: F) -> F:
        new = Metric(fn.__name__, tuple(declared), fn, per, cost, enabled, family, truth)
        _check(new)
        _METRICS[new.name] = new
        return fn

    return decorate


def evaluated_here(fn: Callable[..., Any]) -> None:
    """Move fn's metric to the end of the registration order: where metrics.csv and the report list it."""
    _METRICS[fn.__name__] = _METRICS.pop(fn.__name__)


def metrics(per: Per | None = None, ground_truth: bool | None = True) -> list[Metric]:
    """The registered metrics (of that `per`) in registration order: those measured on samples with a ground
    truth (True, the default), on samples without one (False: photographs without masks), or all (None)."""
    return [mt for mt in _METRICS.values() if (per is None or mt.per == per) and mt.measured(ground_truth)]


def measures(table: str | None = "main", ground_truth: bool | None = True) -> list[Measure]:
    """The declared measures shown in `table` ("summary", "main", "fast", "claims"), in order; None: every
    measure of metrics.csv. ground_truth: of the metrics measured with a ground truth (True), without one
    (False) or all (None)."""
    return [
        m
        for mt in metrics(ground_truth=ground_truth)
        for m in mt.measures
        if (m.in_metrics_csv if table is None else table in m.tables)
    ]


def summary_columns(
    gt: np.ndarray | None,
    pred: np.ndarray,
    class_id: int,
    maps: Mapping[str, np.ndarray | None],
    families: Mapping[str, str],
    *,
    confidence: Confidence = no_confidence,
    maps_gt_pred: tuple[np.ndarray | None, np.ndarray] | None = None,
    after: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The metric columns of a summary.csv row for one class: the "class" metrics of the prediction (gt,
    pred: H×W ids; gt None: a photograph without a mask, whose row has the metrics measured without one;
    confidence: see the module's docstring), then per method of `maps` (its map of the class; None: none)
    the "map" metrics of every method and of its family as "<method>_<name>", on maps_gt_pred (the maps'
    own gt and pred when they are not gt and pred: the figures' display copy), followed by the caller's
    `after` columns of the method (e.g. {"seconds": 1.2} gives "<method>_seconds")."""
    row: dict[str, Any] = {}
    truth = gt is not None
    for declared in metrics("class", truth):
        row.update({m.name: v.value for m, v in declared.values(gt, pred, class_id, confidence).items()})
    map_gt, map_pred = maps_gt_pred if maps_gt_pred is not None else (gt, pred)
    for method, cam in maps.items():
        for declared in metrics("map", truth):
            if declared.applies_to(families.get(method)):
                values = declared.values(cam, map_gt, map_pred, class_id)
                row.update({f"{method}_{m.name}": v.value for m, v in values.items()})
        row.update({f"{method}_{k}": v for k, v in (after or {}).get(method, {}).items()})
    return row
