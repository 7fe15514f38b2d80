"""The context-dependence matrix of --evaluate: does a class's score depend on the pixels of the other
classes and of the background? (Does the root's prediction need the seed, the cotyledons the hypocotyl,
any class the background's texture?) A property of the model, not of a map: one matrix per sample.

For a sample with the explained classes c_1..c_C' (positions j) and the evaluation's regions R_i (the
run's --region; the prediction's under the default `pred`), s_i is the region score of every perturbation
metric of the evaluation (xai.metrics.faithfulness: the mean of the class probability P_i over R_i, the
same for a run whose methods sum or explain logits: the relative change below is the same for a sum and a
mean, and a logit has no sign to be relative to; the class's own score also in a run with --contrast, whose
other metrics measure the contrast score). The replaced regions (columns k), on the photograph V:

    Q_k   the pixels predicted as c_k (k = 1..C'; the diagonal k = i replaces the class's own region)
    near  the background within NEAR_WIDTH pixels (8-neighbour, a (2w+1)² square) of the foreground F
    far   the rest of the background
    F = the pixels of V predicted as any class but the background (output BACKGROUND = 0, as in every
    packaged config), the background = V ∖ F (ignore-labelled pixels of the mask belong to neither)

    D[i, k] = (s_i(x_k) − s_i(x)) / s_i(x)        (−0.4: class i's score falls 40% without region k)

x_k = x with Q_k replaced in all channels, two ways: "mean colour", 0 in the model's input space (the
normalisation's mean colour, as deletion sets it: ImageNet's mean for an ImageNet encoder, a checkpoint's
own mean when it stores one) and "imputed", ROAD's noisy linear imputation (xai.metrics.imputation, with
ROAD's noise and a seeded generator per sample and region: in distribution, the answer to "the mean
colour is out of distribution"). The relative change, not the difference, so that rows of classes the
model is more or less sure of compare (0.9 → 0.45 and 0.4 → 0.2 both read −50%). None with the reason
for a class absent from its region, a class whose score is 0 on x, and an empty replaced region.

Cost: one forward per non-empty replaced region and replacement, 2·(C' + 2) at most per sample, all in
one batched call (xai.batching, counted under "context_dependence" in the evaluation's forwards; off the
CPU one more for each imputation that did not converge blind, as ROAD's), and C' + 2 imputations: small
beside one map's deletion curve, so on by default.

Rows of metrics.csv: class = class i, method = "context_dependence" (not an explanation method: the rows
are the model's), variant = the replaced region (a class name, "background_near" or "background_far"),
metric = context_mean_colour or context_imputed. The report keeps them out of its per-variant tables and
shows them as one matrix per replacement (xai.evaluation.context_report).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..metrics.faithfulness import ABSENT, ZERO_SCORE
from ..metrics.registry import Measure, Row, Value, metric, value_of
from ..syncs import to_host
from ..targets import dilate
from . import measures as _maps_metrics  # noqa: F401  (registered first, whichever module is imported first)
from .stats import Estimate, bootstrap_mean

__all__ = [
    "BACKGROUND",
    "CONTEXT_IMPUTED",
    "CONTEXT_MEAN_COLOUR",
    "FAR",
    "METHOD",
    "NEAR",
    "NEAR_WIDTH",
    "REPLACEMENTS",
    "context_masks",
    "context_matrix",
    "is_context_row",
]

METHOD = "context_dependence"  # the method of its rows (the metric's name: not an explanation method)
BACKGROUND = 0  # the output id of the background (every packaged config: xai.config.DEFAULT_CLASSES)
NEAR_WIDTH = 16  # pixels at the model's input: the band of background "near the seedling"
NEAR, FAR = "background_near", "background_far"  # the two context columns
EMPTY_COLUMN = {
    NEAR: f"no background within {NEAR_WIDTH} px of the predicted foreground",
    FAR: f"no background farther than {NEAR_WIDTH} px from the predicted foreground",
}

CONTEXT_MEAN_COLOUR = Measure(
    "context_mean_colour", "Relative change of s_i, region k set to the mean colour", None, table=None
)
CONTEXT_IMPUTED = Measure("context_imputed", "Relative change of s_i, region k imputed (ROAD)", None, table=None)
REPLACEMENTS = {"mean colour": CONTEXT_MEAN_COLOUR, "imputed": CONTEXT_IMPUTED}  # in the order the images run


@dataclass(frozen=True)
class Columns:
    """The replaced regions of one sample: names (C' class names, then NEAR and FAR), masks (K×H×W bool on
    the host), and the reason of each empty one (None where it has pixels)."""

    names: list[str]
    masks: torch.Tensor
    empty: list[str | None]


def context_masks(
    prediction: torch.Tensor, valid: torch.Tensor, classes: list[int], names: list[str], width: int = NEAR_WIDTH
) -> Columns:
    """The replaced regions Q_k of each class, then near and far (see the module's docstring).

    Args:
        prediction: H×W ids of the unperturbed prediction.
        valid: H×W bool, the photograph's pixels (ignore-labelled ones left out).
        classes: the explained output ids, in position order.
        names: their names.
        width: the band's width w in pixels.

    Returns:
        Columns of C' + 2 regions.
    """
    prediction, valid = prediction.cpu(), valid.cpu().bool()
    own = [(prediction == c) & valid for c in classes]
    foreground = (prediction != BACKGROUND) & valid
    background = valid & ~foreground
    grown = dilate(foreground[None, None], width)[0, 0]
    masks = torch.stack([*own, background & grown, background & ~grown])
    empty = [None if bool(m.any()) else f"no pixel predicted as {n}" for m, n in zip(own, names, strict=True)]
    empty += [None if bool(masks[-2 + k].any()) else EMPTY_COLUMN[n] for k, n in enumerate((NEAR, FAR))]
    return Columns([*names, NEAR, FAR], masks, empty)


def _noise_seed(seed: int, index: int, column: int) -> int:
    return int(np.random.SeedSequence([seed, index, column, 7]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _perturbed_scores(ctx: Any, columns: Columns) -> dict[str, dict[int, np.ndarray]]:
    """{replacement: {column k: C' scores s(x_k)}} of the non-empty columns, in one batched call. Off the
    CPU the imputations run without host looks, as ROAD's (xai.metrics.faithfulness): one look at the end
    redoes the few that did not converge with the checking solver (one more forward each)."""
    faith = ctx.class_faith
    kept = [k for k, reason in enumerate(columns.empty) if reason is None]
    masks = columns.masks[kept].to(faith.device)
    seeds = [_noise_seed(ctx.settings.seed, ctx.index, k) for k in kept]
    jobs = [(name, m) for name in REPLACEMENTS for m in range(len(kept))]
    converged = torch.ones(len(kept), dtype=torch.bool, device=faith.device)
    sync_free = bool(faith.sync_free)

    def impute(which: list[int], checked: bool = False) -> torch.Tensor:
        part = converged[which[0] : which[-1] + 1]
        return faith.impute(masks[which], [seeds[m] for m in which], ctx.settings.road_noise, part, checked)

    def build(a: int, b: int) -> torch.Tensor:
        images = []
        mean = [m for name, m in jobs[a:b] if name == "mean colour"]
        if mean:
            images.append(torch.where(masks[mean].unsqueeze(1), torch.zeros_like(faith.x), faith.x))
        imputed = [m for name, m in jobs[a:b] if name == "imputed"]  # consecutive
        if imputed:
            images.append(impute(imputed))
        return torch.cat(images)

    scores = faith._scores(METHOD, len(jobs), build)
    if sync_free and kept:
        for m in (int(i) for i in np.flatnonzero(~to_host(converged))):
            scores[jobs.index(("imputed", m))] = faith._scores(METHOD, 1, lambda _a, _b, m=m: impute([m], True))[0]
    out: dict[str, dict[int, np.ndarray]] = {name: {} for name in REPLACEMENTS}
    for (name, m), row in zip(jobs, scores, strict=True):
        out[name][kept[m]] = row
    return out


@metric(
    CONTEXT_MEAN_COLOUR,
    CONTEXT_IMPUTED,
    cost="1 forward per replaced region (each class's, near and far background) and replacement: 2·(C' + 2) "
    "per sample, and C' + 2 imputations",
    truth="unused",
)
def context_dependence(ctx: Any) -> Iterator[Row]:
    """D[i, k] = (s_i(x_k) − s_i(x)) / s_i(x): class i's score with region k replaced by the mean colour or
    imputed (see the module's docstring); rows are (region k, class position i, measure, value)."""
    if ctx.prediction is None:
        return
    names = list(getattr(ctx, "class_names", None) or [str(c) for c in ctx.classes])
    columns = context_masks(ctx.prediction, ctx.valid, list(ctx.classes), names)
    scores = _perturbed_scores(ctx, columns)
    y, area = ctx.class_faith.y, ctx.class_faith.area
    for j in range(len(ctx.classes)):
        for k, column in enumerate(columns.names):
            for name, measure in REPLACEMENTS.items():
                if area[j] == 0 or not y[j] > 0:
                    yield column, j, measure, Value(None, ABSENT if area[j] == 0 else ZERO_SCORE)
                elif columns.empty[k] is not None:
                    yield column, j, measure, Value(None, f"the replaced region is empty: {columns.empty[k]}")
                else:
                    yield column, j, measure, value_of((scores[name][k][j] - y[j]) / y[j], ZERO_SCORE)


def is_context_row(row: dict[str, Any]) -> bool:
    """Whether a metrics.csv row is one of the matrix's (not an explanation's)."""
    return row.get("method") == METHOD


def context_matrix(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Estimate]]]:
    """{replacement: {class i: {region k: mean over the samples with a 95% bootstrap interval}}} of the
    matrix's rows of metrics.csv (others are ignored), classes and regions in the order the rows give."""
    by_metric = {m.name: name for name, m in REPLACEMENTS.items()}
    values: dict[str, dict[str, dict[str, list[float | None]]]] = {name: {} for name in REPLACEMENTS}
    for row in rows:
        if is_context_row(row) and row["metric"] in by_metric:
            cells = values[by_metric[row["metric"]]].setdefault(row["class"], {})
            cells.setdefault(row["variant"], []).append(row["value"])
    return {
        name: {i: {k: bootstrap_mean(v) for k, v in per_k.items()} for i, per_k in per_i.items()}
        for name, per_i in values.items()
        if per_i
    }
