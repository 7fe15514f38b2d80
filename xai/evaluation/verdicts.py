"""The report's verdicts: per class and question, the best method, whether it is separated from the next best,
and whether it beats the references.

Input: the report's per-class statistics ({class: {variant: {measure name: Estimate}}}, xai.evaluation.stats),
which variants are references (xai.evaluation.evaluate.REFERENCES) and which of them are model-free baselines
(the Sobel edge map) that every method should beat, and where available the paired
difference of two variants on a measure (per sample over the samples that have both) and why a measure has
no value for a class (the reasons of metrics.csv). Output: one `Verdict` per class and measure of each
question (`QUESTIONS`), data that report.md and report.html render first and metrics.json keeps.

The best method is the variant, references aside, with the best mean in the measure's direction. It is
compared with the next best and with each reference: "better" when the 95% bootstrap interval of the paired
difference best − other lies entirely on the better side of 0, "worse" when entirely on the other side, "not
separated" when it spans 0; without paired samples the two variants' own 95% intervals are compared (better:
they do not overlap). Fewer than MIN_VERDICT_SAMPLES samples give "too few samples", as for the claims.
Every method, not only the best, is compared in the same way with each model-free baseline (`Verdict.baseline`):
a method whose outcome is not "better" does not beat it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..metrics.registry import NO_TRUTH
from .measures import CURVE_AUC, ENERGY_POINTING_GAME, MAX_SENSITIVITY, NOISE_SPEARMAN, ROAD_GAP, Measure
from .stats import MIN_VERDICT_SAMPLES, Estimate

__all__ = [
    "BETTER",
    "NOT_SEPARATED",
    "QUESTIONS",
    "RANDOMISED_SPEARMAN",
    "TOO_FEW",
    "WORSE",
    "AgainstBaseline",
    "Comparison",
    "Question",
    "Verdict",
    "verdicts",
]

# The sanity check as one number per sample, class and method: |Spearman ρ| of the map after randomising the
# whole model (the last step of the cascade) with the original map. Computed by the report from the records'
# sanity entries; not a registered metric (metrics.csv has no rows of it).
RANDOMISED_SPEARMAN = Measure("randomised_spearman", "|Spearman ρ|, whole model randomised", "lower", table=None)

BETTER, WORSE, NOT_SEPARATED, TOO_FEW = "better", "worse", "not separated", "too few samples"


@dataclass(frozen=True)
class Question:
    """A question the report answers first: its words, the measures that answer it, and what would measure
    them where a run did not (a flag)."""

    text: str
    measures: tuple[Measure, ...]
    unmeasured: str


QUESTIONS: tuple[Question, ...] = (
    Question(
        "Which pixels change the score? (deletion, insertion)",
        (CURVE_AUC["deletion", "area"], CURVE_AUC["insertion", "area"]),
        "no value on any sample",
    ),
    Question("Removed in distribution? (ROAD)", (ROAD_GAP,), "ROAD runs unless --no_road is given"),
    Question(
        "Where on the object? (energy pointing game)",
        (ENERGY_POINTING_GAME,),
        "it needs ground-truth masks, a split (--split) rather than --images",
    ),
    Question("Stable under noise?", (MAX_SENSITIVITY, NOISE_SPEARMAN), "--stability_samples N (N > 0) measures it"),
    Question(
        "Passes the sanity check? (cascading randomisation)",
        (RANDOMISED_SPEARMAN,),
        "--sanity_samples N (N > 0) measures it on the first N samples",
    ),
)


@dataclass(frozen=True)
class Comparison:
    """The best method against another variant on the same measure: the other's mean, the paired difference
    best − other (None: no sample has both, the intervals were compared) and the outcome (BETTER, WORSE,
    NOT_SEPARATED, TOO_FEW: for the best method)."""

    variant: str
    estimate: Estimate
    difference: Estimate | None
    outcome: str


@dataclass(frozen=True)
class AgainstBaseline:
    """One method against a model-free baseline on one measure: the method's mean, and the comparison (the
    baseline's mean, the paired difference method − baseline, the outcome for the method)."""

    method: str
    estimate: Estimate
    comparison: Comparison

    @property
    def beats(self) -> bool:
        return self.comparison.outcome == BETTER

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, **self.estimate.as_dict(), "against": _comparison(self.comparison)}


def _comparison(c: Comparison) -> dict[str, Any]:
    diff = c.difference.as_dict() if c.difference is not None else None
    return {"variant": c.variant, **c.estimate.as_dict(), "difference": diff, "outcome": c.outcome}


@dataclass(frozen=True)
class Verdict:
    """One class's answer to one question on one measure. best is None (and not_measured says why and what
    would measure it) where no method has a value."""

    class_name: str
    question: str
    measure: Measure
    best: str | None = None
    estimate: Estimate | None = None
    runner_up: Comparison | None = None  # None: the only method with a value
    references: tuple[Comparison, ...] = ()
    not_measured: str | None = None
    baseline: tuple[AgainstBaseline, ...] = ()  # every method against each model-free baseline

    @property
    def separated(self) -> bool | None:
        """Whether the best method is separated from the next best (None: no next best, or too few samples)."""
        if self.runner_up is None or self.runner_up.outcome == TOO_FEW:
            return None
        return self.runner_up.outcome == BETTER

    def as_dict(self) -> dict[str, Any]:
        """The verdict for metrics.json."""
        return {
            "class": self.class_name,
            "question": self.question,
            "measure": self.measure.name,
            "better": self.measure.better,
            "best": self.best,
            "estimate": self.estimate.as_dict() if self.estimate is not None else None,
            "separated": self.separated,
            "next_best": _comparison(self.runner_up) if self.runner_up is not None else None,
            "references": [_comparison(c) for c in self.references],
            "not_measured": self.not_measured,
            "baseline": [b.as_dict() for b in self.baseline],
        }


Difference = Callable[[str, str, str, str], Estimate]  # (class, measure name, A, B) -> paired A − B


def verdicts(
    stats: Mapping[str, Mapping[str, Mapping[str, Estimate]]],
    references: Sequence[str],
    *,
    difference: Difference | None = None,
    reasons: Mapping[tuple[str, str], str] | None = None,
    questions: Sequence[Question] = QUESTIONS,
    baselines: Sequence[str] = (),
) -> list[Verdict]:
    """The verdicts of every class (in the order of `stats`), question and measure.

    Args:
        stats: {class: {variant: {measure name: mean with its 95% interval and n}}}; a measure missing or
            with n = 0 has no value for that variant.
        references: the variants that are references, not methods (compared with, never the best).
        difference: the paired difference A − B of two variants on a measure of a class; None: compare the
            variants' own intervals.
        reasons: {(class, measure name): why it has no value} (metrics.csv's reason), for "not measured".
        questions: the questions and their measures.
        baselines: the references that are model-free baselines: every method is compared with each.

    Returns:
        One Verdict per class, question and measure, in that order.
    """
    return [
        _verdict(c, q, m, by_variant, references, difference, reasons or {}, baselines)
        for c, by_variant in stats.items()
        for q in questions
        for m in q.measures
    ]


def _verdict(
    c: str,
    q: Question,
    m: Measure,
    by_variant: Mapping[str, Mapping[str, Estimate]],
    references: Sequence[str],
    difference: Difference | None,
    reasons: Mapping[tuple[str, str], str],
    baselines: Sequence[str] = (),
) -> Verdict:
    """One class's verdict on one measure."""
    got = {v: per[m.name] for v, per in by_variant.items() if m.name in per and per[m.name].n}
    methods = [v for v in got if v not in references]
    if not methods:
        reason = reasons.get((c, m.name))
        why = q.unmeasured if reason in (None, NO_TRUTH) else f"no value for this class: {reason}"
        return Verdict(c, q.text, m, not_measured=f"not measured: {why}")
    ranked = sorted(methods, key=lambda v: got[v].mean, reverse=m.better == "higher")  # stable: ties keep order
    best = ranked[0]

    def against(other: str, method: str = best) -> Comparison:
        diff = difference(c, m.name, method, other) if difference is not None else None
        diff = diff if diff is not None and diff.n else None
        return Comparison(other, got[other], diff, outcome(got[method], got[other], diff, m.better))

    runner_up = against(ranked[1]) if len(ranked) > 1 else None
    compared = tuple(against(r) for r in references if r in got)
    floor = tuple(AgainstBaseline(v, got[v], against(b, v)) for b in baselines if b in got for v in methods)
    return Verdict(c, q.text, m, best, got[best], runner_up, compared, baseline=floor)


def outcome(best: Estimate, other: Estimate, difference: Estimate | None, better: str | None) -> str:
    """How `best` compares with `other` on a measure where `better` ("higher" or "lower") is better.

    Args:
        best: the best method's mean and 95% interval.
        other: the other variant's.
        difference: their paired difference best − other (its interval decides); None: their own intervals
            decide (better: they do not overlap).
        better: the measure's direction.

    Returns:
        BETTER, WORSE, NOT_SEPARATED, or TOO_FEW (fewer than MIN_VERDICT_SAMPLES samples, or no interval).
    """
    sign = 1.0 if better == "higher" else -1.0
    bounds: list[float]
    if difference is not None:
        n, bounds = difference.n, [difference.low, difference.high]
        ahead = sorted(sign * x for x in bounds)  # the best method's advantage, as an interval
    else:
        n, bounds = min(best.n, other.n), [best.low, best.high, other.low, other.high]
        b, o = sorted(sign * x for x in bounds[:2]), sorted(sign * x for x in bounds[2:])
        ahead = [b[0] - o[1], b[1] - o[0]]  # > 0 entirely: the intervals do not overlap
    if n < MIN_VERDICT_SAMPLES or any(math.isnan(x) for x in bounds):
        return TOO_FEW
    if ahead[0] > 0:
        return BETTER
    if ahead[1] < 0:
        return WORSE
    return NOT_SEPARATED
