"""Faithfulness Correlation, IROF (xai.metrics.removal), the Local Lipschitz estimate and Random Logit's SSIM
(xai.metrics.robustness) against the slow references of tests/metric_reference.py, on a padded photograph
(the metrics never touch the padding) and the maps of a tiny seeded model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from tests import metric_reference as ref
from tests.helpers import tiny_convnet
from tests.metric_reference import one_thread  # noqa: F401  (autouse: one intra-op thread)
from xai.evaluation import measures as M
from xai.evaluation.settings import EvaluationSettings
from xai.metrics import removal, robustness

H, W, CLASSES = 12, 16, [0, 1, 2]


@pytest.fixture(scope="module")
def ctx() -> M.Context:
    """A tiny conv net, a smooth 12×16 input whose last 3 columns are padding, Grad-CAM's maps."""
    model = tiny_convnet(classes=3, seed=2)
    g = torch.Generator().manual_seed(4)
    x = torch.nn.functional.interpolate(torch.randn(1, 3, 3, 4, generator=g), size=(H, W), mode="bilinear")
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[:, -3:] = False
    x[..., -3:] = 0.7  # padding: never changed, never counted
    engine = xai.GradCAM(model, target_layer="features.1")
    result = engine.explain(x, classes=CLASSES, valid=valid[None])
    assert result.prediction is not None
    pred = torch.where(valid, result.prediction[0], 255)
    regions = torch.stack([(pred == c) & valid for c in CLASSES])
    settings = EvaluationSettings(
        quantus_metrics=True, correlation_runs=6, correlation_subset=20, irof_segments=8, lipschitz_samples=2
    )
    return M.Context(
        model=model,
        index=3,
        x=x,
        gt=pred,
        valid=valid,
        classes=CLASSES,
        regions=regions,
        maps={"gradcam": result.maps[0] * valid},
        settings=settings,
        prediction=pred,
        engines={"gradcam": engine},
    )


def test_random_subsets_are_seeded_subsets_of_the_photograph(ctx):
    a = removal.random_subsets(ctx.valid, 6, 20, seed=3)
    assert torch.equal(a, removal.random_subsets(ctx.valid, 6, 20, seed=3))
    assert not torch.equal(a, removal.random_subsets(ctx.valid, 6, 20, seed=4))
    assert (a.flatten(1).sum(1) == 20).all() and not (a & ~ctx.valid).any()
    assert removal.random_subsets(ctx.valid, 2, 10_000, seed=0).flatten(1).sum(1).tolist() == [156, 156]


def test_faithfulness_correlation_matches_the_reference(ctx):
    rows = list(M.faithfulness_correlation(ctx))
    subsets = removal.random_subsets(ctx.valid, 6, 20, ctx.settings.seed + ctx.index)
    for _, j, _, value in rows:
        if not ctx.regions[j].any():
            assert value.value is None and value.reason == "class absent from its region"
            continue
        expected = ref.faithfulness_correlation(ctx.model, ctx.x[0], ctx.maps["gradcam"][j], j, ctx.regions[j], subsets)
        assert value.value == pytest.approx(expected, abs=1e-4)
    assert ctx.faith.forwards["faithfulness_correlation"] == 6  # one forward per subset, for every map and class


def test_superpixels_cover_the_photograph_only(ctx):
    segments = removal.superpixels(ctx.x[0], ctx.valid, 8)
    assert (segments[~ctx.valid] == 0).all() and (segments[ctx.valid] > 0).all()
    assert len(segments.unique()) > 3
    assert torch.equal(segments, removal.superpixels(ctx.x[0], ctx.valid, 8))


def test_irof_matches_the_reference(ctx):
    before = ctx.faith.forwards.get("irof", 0)
    rows = list(M.irof(ctx))
    segments = removal.superpixels(ctx.x[0], ctx.valid, 8)
    K = len(segments.unique()) - 1  # label 0: padding
    present = 0
    for _, j, _, value in rows:
        if not ctx.regions[j].any():
            assert value.value is None
            continue
        present += 1
        expected = ref.irof(ctx.model, ctx.x[0], ctx.maps["gradcam"][j], j, ctx.regions[j], segments)
        assert value.value == pytest.approx(expected, rel=1e-5)
    assert present > 0 and ctx.faith.forwards["irof"] - before == present * K


def test_irof_of_a_score_that_never_falls_is_zero_and_of_one_that_vanishes_at_once_is_nearly_one():
    assert removal.irof(0.5, np.array([0.5, 0.5, 0.5])) == pytest.approx(0.0)
    assert removal.irof(0.5, np.array([0.0, 0.0, 0.0])) == pytest.approx(1 - 1 / 6)  # the first step: (1 + 0)/2K
    assert removal.irof(0.0, np.array([0.0])) is None


def test_segment_order_breaks_ties_by_label():
    segments = torch.tensor([[1, 1, 2], [3, 3, 2]])
    cam = torch.tensor([[0.5, 0.5, 0.2], [0.5, 0.5, 0.9]])
    assert removal.segment_order(cam, segments) == [2, 1, 3]  # means 0.55, 0.5, 0.5


def test_local_lipschitz_matches_the_reference(ctx):
    g = torch.Generator().manual_seed(0)
    original = torch.rand(H, W, generator=g) * ctx.valid
    noisy = [torch.rand(H, W, generator=g) * ctx.valid for _ in range(3)]
    noises = [torch.randn(1, 3, H, W, generator=g) * ctx.valid for _ in range(3)]
    expected = ref.local_lipschitz(noisy, noises, original, ctx.valid)
    assert robustness.local_lipschitz(noisy, noises, original, ctx.valid) == pytest.approx(expected, rel=1e-9)
    assert robustness.local_lipschitz([], [], original, ctx.valid) is None


def test_ssim_matches_the_reference():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(H, W, generator=g), torch.rand(H, W, generator=g)
    assert robustness.ssim(a, b) == pytest.approx(ref.ssim(a, b), rel=1e-9)
    assert robustness.ssim(a, a) == pytest.approx(1.0)
    assert robustness.ssim(torch.zeros(H, W), torch.zeros(H, W)) is None


def test_random_logit_and_local_lipschitz_measure_every_class_of_the_method(ctx):
    rows = list(M.random_logit(ctx)) + list(M.local_lipschitz(ctx))
    assert {(m.name, j) for _, j, m, _ in rows} == {
        (n, j) for n in ("random_logit", "local_lipschitz") for j in range(3)
    }
    for _, j, m, value in rows:
        assert value.value is not None or value.reason, (m.name, j)


def test_the_four_metrics_are_off_unless_asked_for():
    """--quantus_metrics turns on exactly these four (their forwards would slow every default run)."""
    from xai.metrics.registry import metrics

    names = {"faithfulness_correlation", "irof", "random_logit", "local_lipschitz"}
    assert not names & {mt.name for mt in metrics(ground_truth=None) if mt.enabled(EvaluationSettings())}
    on = {mt.name for mt in metrics(ground_truth=None) if mt.enabled(EvaluationSettings(quantus_metrics=True))}
    off = {mt.name for mt in metrics(ground_truth=None) if mt.enabled(EvaluationSettings())}
    assert on - off == names
