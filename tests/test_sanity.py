"""Cascading randomisation: the identity keeps ρ = 1, a randomised model sends Grad-CAM's ρ towards 0,
the caller's model and the global RNG are left alone, and the cascade is cumulative and seeded."""

from __future__ import annotations

import math

import pytest
import torch

import xai
from tests import metric_reference as ref
from tests.helpers import image_batch, tiny_fpn
from tests.linear_head import LinearHead
from tests.metric_reference import one_thread  # noqa: F401 (autouse fixture)
from xai.errors import XAIError
from xai.metrics.sanity import cascading_randomisation, randomisation_steps, randomised_copies, same_engine, spearman

CLASSES = [0, 1, 2, 3, 4]
FPN_STEPS = [
    "segmentation_head",
    "decoder",
    "encoder.layer4",
    "encoder.layer3",
    "encoder.layer2",
    "encoder.layer1",
    "encoder.stem",
]


def _case(h: int = 64, w: int = 128):
    model = tiny_fpn()
    x = image_batch(1, h, w)
    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    valid = torch.ones(h, w, dtype=torch.bool)
    valid[:, w - 8 :] = False
    return model, x, pred, valid


def test_identity_gives_1_and_the_randomised_model_near_0():
    model, x, pred, valid = _case()
    engine = xai.GradCAM(model, target_layer="encoder.layer2")
    steps = cascading_randomisation(engine, x, CLASSES, valid, pred, seed=0)
    assert [name for name, _ in steps] == FPN_STEPS
    last = steps[-1][1]
    finite = last[torch.isfinite(last)]
    assert finite.numel() >= 3
    assert abs(float(finite.mean())) < 0.2 and float(finite.abs().mean()) < 0.25 and float(finite.abs().max()) < 0.5
    ((name, rho),) = cascading_randomisation(engine, x, CLASSES, valid, pred, steps=["none"])
    assert name == "none" and torch.equal(rho, torch.ones(5, dtype=torch.float64))


def test_callers_model_and_global_rng_are_untouched_and_results_are_seeded():
    model, x, pred, valid = _case(32, 64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    engine = xai.GradCAM(model, target_layer="encoder.layer1")
    a = cascading_randomisation(engine, x, [1, 2, 3], valid, pred, seed=3, steps=["decoder", "encoder.layer3"])
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert engine.model is model and engine.options.region == "pred" and not model.training
    b = cascading_randomisation(engine, x, [1, 2, 3], valid, pred, seed=3, steps=["encoder.layer3", "decoder"])
    c = cascading_randomisation(engine, x, [1, 2, 3], valid, pred, seed=4, steps=["decoder", "encoder.layer3"])
    assert [n for n, _ in a] == ["decoder", "encoder.layer3"] == [n for n, _ in b]  # cascade order
    same = lambda p, q: torch.allclose(p, q, rtol=0, atol=0, equal_nan=True)  # noqa: E731
    assert all(same(p, q) for (_, p), (_, q) in zip(a, b, strict=True)) and bool(torch.isfinite(a[1][1]).any())
    assert not same(a[1][1], c[1][1])


def _changed(original: torch.nn.Module, copy: torch.nn.Module, prefix: str) -> bool:
    new = copy.state_dict()
    return any(
        not torch.equal(v, new[k])
        for k, v in original.state_dict().items()
        if k.startswith(prefix) and v.is_floating_point()
    )


def test_the_cascade_is_cumulative_from_the_top():
    model = tiny_fpn()
    groups = [
        "segmentation_head",
        "decoder",
        "encoder.layer4",
        "encoder.layer3",
        "encoder.layer2",
        "encoder.layer1",
        "encoder.conv1",
        "encoder.bn1",
    ]
    seen = []
    for k, (name, copy) in enumerate(randomised_copies(model, seed=0)):
        assert copy is not model
        changed = [g for g in groups if _changed(model, copy, g + ".")]
        expected = groups[:k] if k < 7 else groups  # the stem step re-initialises conv1 and bn1 together
        assert changed == expected, name
        seen.append(name)
    assert seen == ["none", *FPN_STEPS]
    assert randomisation_steps(model)[-1] == ("encoder.stem", ["encoder.conv1", "encoder.bn1"])


def test_steps_of_a_model_without_smp_parts_are_its_children_last_first():
    assert randomisation_steps(LinearHead()) == [("head", ["head"]), ("features", ["features"])]


def test_spearman_matches_the_loop_reference_with_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        a = (torch.rand(40, generator=g) * 6).floor()
        b = a + (torch.rand(40, generator=g) * 4).floor()
        assert math.isclose(spearman(a, b), ref.spearman(a.tolist(), b.tolist()), rel_tol=1e-9)
    assert spearman(torch.arange(5.0), torch.arange(5.0) ** 3) == pytest.approx(1.0)
    assert math.isnan(spearman(torch.ones(5), torch.arange(5.0)))


def test_same_engine_keeps_the_options_that_change_the_maps():
    model, other = tiny_fpn(seed=0), tiny_fpn(seed=1)
    engine = xai.ScoreCAM(
        model,
        batch_size=4,
        max_activation_maps=3,
        baseline="none",
        weights="softmax",
        channel_selection="random",
        seed=7,
        precision="fp32",
        memory_format="contiguous",
    )
    copy = same_engine(engine, other, region="gt")
    assert type(copy) is xai.ScoreCAM and copy.model is other and copy.options.region == "gt"
    assert copy.options.describe() == {**engine.options.describe(), "region": "gt"}
    score = lambda P: P.mean(dim=(2, 3))  # noqa: E731
    grad = same_engine(xai.GradCAM(model, target_layer="encoder.layer3", score=score), other)
    assert isinstance(grad, xai.GradCAM) and grad.options.score is score and grad.target_layer == "encoder.layer3"


def test_an_unknown_step_is_refused():
    model, x, pred, valid = _case(32, 64)
    with pytest.raises(XAIError, match="unknown randomisation step"):
        cascading_randomisation(xai.GradCAM(model), x, [0], valid, pred, steps=["layer9"])
