"""Our metrics against Quantus 0.6.0 (Hedström et al. 2023), the library researchers cite, on crafted maps and
on the maps of a tiny seeded smp model: each value equals Quantus' or differs by exactly the stated factor
(the table of docs/faithfulness.md, "Quantus counterparts").

Quantus evaluates a classifier: model(x) -> N×classes. `RegionScores` turns the segmentation model into one:
its outputs are the region scores s_c of the evaluated classes (the mean of P_c over the fixed region R_c),
so Quantus' "logit" y is our s_c. For the removal metrics Quantus' input is a keep-mask (N×1×H×W, 1 =
the pixel is kept): the wrapper runs x·mask, so that Quantus' baseline 0 removes a pixel in all channels
as ours does, and Quantus' features are our pixels. The perturbation orders use maps without ties
(Quantus sorts with numpy's unstable argsort; ours is stable, ties in raster order).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import quantus
import torch

import xai
from tests.helpers import tiny_fpn
from tests.metric_reference import one_thread  # noqa: F401  (autouse: one intra-op thread)
from xai.evaluation import measures as M
from xai.evaluation.settings import EvaluationSettings
from xai.metrics import claims, removal, robustness
from xai.metrics.faithfulness import Faithfulness
from xai.metrics.localisation import energy_pointing_game, pointing_game, relevance_rank_accuracy

H, W, CLASSES = 32, 64, (0, 1, 2)
ZERO: Any = 0.0  # Quantus' baseline: a number (its annotation says str; get_baseline_value takes numbers)


@pytest.fixture(autouse=True)
def numpy_trapz(monkeypatch):
    """Quantus 0.6.0 integrates with np.trapz, which numpy 2.4 removed (np.trapezoid is the same rule);
    numpy's global generator (Quantus draws from it) is restored afterwards."""
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    state = np.random.get_state()
    yield
    np.random.set_state(state)


class RegionScores(torch.nn.Module):
    """The segmentation model as Quantus' classifier: N×C' region scores s_c (softmax, mean over R_c,
    float64 sums). With `x`, the input is a keep-mask N×1×H×W and the model runs x·mask."""

    def __init__(self, model: torch.nn.Module, regions: torch.Tensor, x: torch.Tensor | None = None):
        super().__init__()
        self.model, self.regions, self.x = model, regions.double(), x
        self.eval()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        images = inputs.float() if self.x is None else self.x * inputs.float()
        P = torch.softmax(self.model(images), dim=1).double()
        return (P * self.regions).flatten(2).sum(2) / self.regions.flatten(1).sum(1)


@pytest.fixture(scope="module")
def sample():
    """A tiny FPN, a smooth 32×64 input (so that SLIC finds superpixels), its prediction, the regions of the
    three classes and each class's Grad-CAM map (region fixed to the prediction)."""
    model = tiny_fpn(seed=0, classes=3)
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.interpolate(torch.randn(1, 3, 4, 8, generator=g), size=(H, W), mode="bilinear")
    valid = torch.ones(H, W, dtype=torch.bool)
    engine = xai.GradCAM(model, target_layer="encoder.layer3")
    result = engine.explain(x, classes=list(CLASSES), valid=valid[None])
    assert result.prediction is not None
    pred = result.prediction[0]
    regions = torch.stack([pred == c for c in CLASSES])
    assert all(int(r.sum()) > 0 for r in regions), "every class is predicted somewhere"
    return model, engine, x, valid, pred, regions, result.maps[0].double()


def distinct(cam: torch.Tensor) -> torch.Tensor:
    """A map with the same stable descending order as cam and no ties: −(position in our order)."""
    order = torch.argsort(cam.flatten(), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return -rank.view(cam.shape).double()


def crafted(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(H, W, generator=g, dtype=torch.float64) ** 3  # skewed, no ties


def context(sample, settings: EvaluationSettings) -> M.Context:
    model, engine, x, valid, pred, regions, maps = sample
    return M.Context(
        model=model,
        index=0,
        x=x,
        gt=pred,
        valid=valid,
        classes=list(CLASSES),
        regions=regions,
        maps={"gradcam": maps.float()},
        settings=settings,
        prediction=pred,
        engines={"gradcam": engine},
    )


def quantus_call(metric, model, x, y, a, s=None, **keywords):
    return np.asarray(
        metric(
            model=model,
            x_batch=np.asarray(x, dtype=np.float32),
            y_batch=np.asarray(y),
            a_batch=None if a is None else np.asarray(a, dtype=np.float64),
            s_batch=s,
            channel_first=True,
            softmax=False,
            device="cpu",
            **keywords,
        ),
        dtype=np.float64,
    )


# ---- no forward pass --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["crafted", "model"])
def test_sparseness_is_quantus_gini_up_to_its_epsilon(sample, source):
    """Quantus adds 1e-7 to every value of the max-normalised map â; Σ_i (2i − n − 1) = 0, so its Gini is
    ours times Σâ / (Σâ + n·1e-7)."""
    cams = [crafted(k) for k in range(3)] if source == "crafted" else list(sample[-1])
    ours = np.array([claims.sparseness(c, torch.ones(H, W, dtype=torch.bool)) for c in cams])
    theirs = quantus_call(
        quantus.Sparseness(disable_warnings=True),
        None,
        np.ones((3, 1, H, W)),
        [0, 0, 0],
        np.stack([c[None].numpy() for c in cams]),
    )
    hat = [c / c.max() for c in cams]
    factor = np.array([float(a.sum() / (a.sum() + a.numel() * 1e-7)) for a in hat])
    np.testing.assert_allclose(theirs, ours * factor, rtol=1e-8)  # without the factor: ~4e-7
    assert np.all(np.abs(theirs - ours) < 1e-6)


@pytest.mark.parametrize("source", ["crafted", "model"])
def test_complexity_is_quantus_entropy_divided_by_log_n(sample, source):
    """Ours is the entropy normalised by log|V| (1 for a uniform map); Quantus' the entropy in nats."""
    cams = [crafted(k) for k in range(3)] if source == "crafted" else list(sample[-1])
    ours = np.array([claims.complexity(c, torch.ones(H, W, dtype=torch.bool)) for c in cams])
    theirs = quantus_call(
        quantus.Complexity(disable_warnings=True),
        None,
        np.ones((3, 1, H, W)),
        [0, 0, 0],
        np.stack([c[None].numpy() for c in cams]),
    )
    np.testing.assert_allclose(theirs, ours * math.log(H * W), rtol=1e-9)


def truths() -> list[torch.Tensor]:
    """Ground truths: a box, a stripe and a sparse random mask."""
    box = torch.zeros(H, W, dtype=torch.bool)
    box[8:20, 10:40] = True
    stripe = torch.zeros(H, W, dtype=torch.bool)
    stripe[:, 50:] = True
    g = torch.Generator().manual_seed(5)
    return [box, stripe, torch.rand(H, W, generator=g) < 0.1]


@pytest.mark.parametrize("source", ["crafted", "model"])
def test_localisation_equals_quantus(sample, source):
    """Rank accuracy = RelevanceRankAccuracy, energy pointing game = RelevanceMassAccuracy, pointing game =
    PointingGame (several maximal pixels: a hit if any lies in the truth, in both)."""
    cams = [crafted(k) for k in range(3)] if source == "crafted" else list(sample[-1])
    valid = torch.ones(H, W, dtype=torch.bool)
    for cam, gt in zip(cams, truths(), strict=True):
        a, s = distinct(cam).numpy()[None, None], gt.numpy()[None, None].astype(np.float64)
        args = (None, np.ones((1, 1, H, W)), [0], a - a.min())
        rank = quantus_call(quantus.RelevanceRankAccuracy(disable_warnings=True), *args, s=s)
        assert rank[0] == relevance_rank_accuracy(cam, gt, valid).value
        a, args = cam.numpy()[None, None], (None, np.ones((1, 1, H, W)), [0], cam.numpy()[None, None])
        mass = quantus_call(quantus.RelevanceMassAccuracy(disable_warnings=True), *args, s=s)
        assert mass[0] == pytest.approx(energy_pointing_game(cam, gt, valid).value, rel=1e-7)  # ours: float32 maps
        hit = quantus_call(quantus.PointingGame(disable_warnings=True), *args, s=s)
        assert hit[0] == pointing_game(cam, gt, valid).value


# ---- perturbation: the model's forwards -------------------------------------------------------------------


@pytest.mark.parametrize("source", ["crafted", "model"])
def test_deletion_is_pixel_flipping_with_our_schedule_and_baseline(sample, source):
    """Deletion (linear schedule, S steps of |V|/S pixels, baseline 0 in all channels) = PixelFlipping with
    features_in_step = |V|/S and baseline 0: the same S scores after each step; Quantus' curve lacks the
    unperturbed point and integrates with unit spacing, so S·(our AUC) = its AUC + (s_c(x) + s_1)/2."""
    model, _, x, valid, _, regions, maps = sample
    cams = torch.stack([crafted(k) for k in range(3)]) if source == "crafted" else maps
    S = 8
    ours = Faithfulness(model, x, list(CLASSES), regions, valid).deletion({"m": cams.float()}, steps=S)["m"]
    wrapper = RegionScores(model, regions, x)
    for j in range(len(CLASSES)):
        a = distinct(cams[j]).numpy()[None, None]
        keep = np.ones((1, 1, H, W))
        flip = quantus.PixelFlipping(
            features_in_step=H * W // S, perturb_baseline=ZERO, normalise=False, disable_warnings=True
        )
        curve = quantus_call(flip, wrapper, keep, [j], a - a.min())[0]
        curve_j = ours[j].curve
        assert curve_j is not None
        s = curve_j[1].numpy()
        np.testing.assert_allclose(s[1:], curve, rtol=1e-5, atol=1e-7)
        auc = quantus.PixelFlipping(
            features_in_step=H * W // S,
            perturb_baseline=ZERO,
            normalise=False,
            return_auc_per_sample=True,
            disable_warnings=True,
        )
        their_auc = quantus_call(auc, wrapper, keep, [j], a - a.min())[0]
        assert S * ours[j].auc == pytest.approx(their_auc + (s[0] + s[1]) / 2, rel=1e-5)


@pytest.mark.parametrize("source", ["crafted", "model"])
def test_faithfulness_correlation_equals_quantus_on_the_same_subsets(sample, source, monkeypatch):
    """Our measure with Quantus' random subsets (numpy's legacy global generator, drawn as Quantus draws
    them) gives Quantus' FaithfulnessCorrelation (baseline 0, Pearson)."""
    model, _, x, _, _, regions, _ = sample
    T, m, seed = 12, 600, 7
    np.random.seed(seed)
    drawn = [np.random.choice(H * W, m, replace=False) for _ in range(T)]
    subsets = torch.zeros(T, H * W, dtype=torch.bool)
    for t, idx in enumerate(drawn):
        subsets[t, idx] = True
    monkeypatch.setattr(removal, "random_subsets", lambda *args: subsets.view(T, H, W))
    ctx = context(sample, EvaluationSettings(quantus_metrics=True, correlation_runs=T, correlation_subset=m))
    if source == "crafted":
        ctx.maps["gradcam"] = torch.stack([crafted(k) for k in range(3)]).float()
    ours = [v.value for _, _, _, v in M.faithfulness_correlation(ctx)]
    assert ctx.faith.forwards["faithfulness_correlation"] == T
    wrapper = RegionScores(model, regions, x)
    for j in range(len(CLASSES)):
        np.random.seed(seed)
        fc = quantus.FaithfulnessCorrelation(
            nr_runs=T, subset_size=m, perturb_baseline=ZERO, normalise=False, disable_warnings=True
        )
        theirs = quantus_call(
            fc, wrapper, np.ones((1, 1, H, W)), [j], ctx.maps["gradcam"][j].double().numpy()[None, None]
        )
        assert ours[j] == pytest.approx(theirs[0], abs=1e-5)


@pytest.mark.parametrize("source", ["crafted", "model"])
def test_irof_is_quantus_irof_with_the_unperturbed_point(sample, source, monkeypatch):
    """With our superpixels given to Quantus' IROF (baseline 0): Quantus leaves out q_0 = 1 and spaces the
    K points by 1, so its area over the curve is K·(ours) + (1 + q_1)/2."""
    model, _, x, valid, _, regions, maps = sample
    ctx = context(sample, EvaluationSettings(quantus_metrics=True, irof_segments=30))
    if source == "crafted":
        ctx.maps["gradcam"] = torch.stack([crafted(k) for k in range(3)]).float()
    else:  # Grad-CAM is 0 on whole superpixels: 1e-4 of a crafted map breaks those ties (Quantus' sort is unstable)
        ctx.maps["gradcam"] = (maps + 1e-4 * crafted(9)).float()
    segments = removal.superpixels(x[0], valid, 30)
    K = len(segments.unique())
    assert K >= 10 and int(segments.min()) == 1
    ours = [float(v.value) for _, _, _, v in M.irof(ctx) if v.value is not None]
    assert ctx.faith.forwards["irof"] == 3 * K
    monkeypatch.setattr(quantus.helpers.utils, "get_superpixel_segments", lambda img, **kw: segments.numpy() - 1)
    wrapper = RegionScores(model, regions, x)
    for j in range(len(CLASSES)):
        cam = ctx.maps["gradcam"][j].double()
        means = [float(cam[segments == k].mean()) for k in range(1, K + 1)]
        assert len(set(means)) == K  # no tied segments: Quantus' order is ours
        first = segments == removal.segment_order(cam, segments)[0]
        with torch.no_grad():
            s = wrapper(torch.stack([torch.ones(H, W), (~first).double()])[:, None])[:, j]
        q1 = float(s[1] / s[0])
        irof = quantus.IROF(perturb_baseline=ZERO, normalise=False, disable_warnings=True)
        theirs = quantus_call(irof, wrapper, np.ones((1, 1, H, W)), [j], cam.numpy()[None, None])
        assert K * ours[j] + (1 + q1) / 2 == pytest.approx(theirs[0], rel=1e-5)


# ---- re-explaining -----------------------------------------------------------------------------------------


def explainer(sample, record: list | None = None, region_of: int | None = None):
    """Quantus' explain_func: our Grad-CAM with the region fixed to the prediction (as our stability
    metrics fix it) or, with region_of = j, to the region R_c of class j whatever the target."""
    _, engine, _, valid, pred, regions, _ = sample
    fixed = M._fixed_region(engine)

    def explain(model, inputs, targets, **_):
        out = []
        for image, target in zip(inputs, targets, strict=True):
            gt = pred if region_of is None else torch.where(regions[region_of], int(target), xai.labels.IGNORE)
            x = torch.as_tensor(image, dtype=torch.float32)[None]
            m = fixed.explain(x, classes=[int(target)], gt=gt[None], valid=valid[None]).maps[0, 0].double()
            if record is not None:
                record.append((x, m))
            out.append(m.numpy()[None])
        return np.stack(out)

    return explain


def test_max_sensitivity_equals_quantus_on_the_same_noisy_inputs(sample):
    """Quantus' MaxSensitivity (uniform noise, Frobenius norms, no normalisation) and ours on the maps of the
    noisy inputs Quantus drew."""
    model, _, x, valid, _, regions, maps = sample
    # Quantus draws the noise from numpy's global generator. Seed 1: with seed 0 class 2's Grad-CAM vanishes
    # (0 everywhere) on one noisy copy, which Quantus refuses ("Recompute the explanations"); ours counts
    # that copy as a change of 1
    np.random.seed(1)
    for j in range(len(CLASSES)):
        record: list = []
        ms = quantus.MaxSensitivity(
            nr_samples=3,
            lower_bound=0.05,
            normalise=False,
            disable_warnings=True,
            return_nan_when_prediction_changes=False,
        )
        theirs = quantus_call(
            ms,
            RegionScores(model, regions),
            x.numpy(),
            [j],
            maps[j].numpy()[None, None],
            explain_func=explainer(sample, record),
        )
        change, _ = claims.max_sensitivity([m for _, m in record], maps[j], valid)
        assert change == pytest.approx(theirs[0], rel=1e-6)


def test_local_lipschitz_equals_quantus_on_the_same_noisy_inputs(sample):
    """Quantus' LocalLipschitzEstimate (Gaussian noise, Euclidean distances) and ours on the same inputs;
    Quantus adds 1e-10 to the denominator."""
    model, _, x, valid, _, regions, maps = sample
    np.random.seed(0)  # Quantus draws the noise from numpy's global generator
    for j in range(len(CLASSES)):
        record: list = []
        lle = quantus.LocalLipschitzEstimate(
            nr_samples=3,
            perturb_std=0.1,
            normalise=False,
            disable_warnings=True,
            norm_numerator=quantus.distance_euclidean,
            norm_denominator=quantus.distance_euclidean,
        )
        theirs = quantus_call(
            lle,
            RegionScores(model, regions),
            x.numpy(),
            [j],
            maps[j].numpy()[None, None],
            explain_func=explainer(sample, record),
        )
        ours = robustness.local_lipschitz([m for _, m in record], [xi - x for xi, _ in record], maps[j], valid)
        assert ours == pytest.approx(theirs[0], rel=1e-6)


def test_random_logit_is_quantus_ssim_of_the_flattened_maps(sample):
    """Quantus' RandomLogit (SSIM, no normalisation) compares the maps flattened to one row; ours
    (robustness.ssim) of the same flattened maps is equal, of the 2-D maps (7×7 windows) it differs."""
    model, _, x, _, _, regions, maps = sample
    for j in range(len(CLASSES)):
        record: list = []
        rl = quantus.RandomLogit(num_classes=3, seed=j, normalise=False, disable_warnings=True)
        theirs = quantus_call(
            rl,
            RegionScores(model, regions),
            x.numpy(),
            [j],
            maps[j].numpy()[None, None],
            explain_func=explainer(sample, record, region_of=j),
        )
        ((_, other),) = record
        assert robustness.ssim(maps[j].flatten(), other.flatten()) == pytest.approx(theirs[0], rel=1e-9)
        assert robustness.ssim(maps[j], other) != pytest.approx(theirs[0], rel=1e-3)


def test_the_new_measures_record_their_forwards_and_give_a_value_or_a_reason(sample):
    ctx = context(
        sample, EvaluationSettings(quantus_metrics=True, correlation_runs=4, irof_segments=12, lipschitz_samples=2)
    )
    for fn in (M.faithfulness_correlation, M.irof, M.random_logit, M.local_lipschitz):
        rows = list(fn(ctx))
        assert len(rows) == len(CLASSES)
        assert all((v.value is not None and math.isfinite(v.value)) or v.reason for *_, v in rows)
    assert {"faithfulness_correlation", "irof", "random_logit", "local_lipschitz"} <= set(ctx.faith.forwards)
    assert ctx.faith.forwards["random_logit"] == 3 and ctx.faith.forwards["local_lipschitz"] == 2
