"""Host synchronisations per sweep and per metric, counted on the CPU with a dispatch mode (xai.syncs):
the budget is fixed, whatever the number of chunks."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from xai.methods import get_method
from xai.metrics.faithfulness import Faithfulness
from xai.metrics.imputation import noisy_linear_impute
from xai.syncs import SyncCounter, to_host


def test_the_counter_sees_what_would_wait_for_a_gpu():
    t = torch.arange(6.0)
    with SyncCounter() as syncs:
        float(t.sum())
        t[t > 2]
        if t.any():
            t.to("meta")
        to_host(t)
    assert syncs.counts["_local_scalar_dense"] >= 1 and syncs.counts["boolean_index"] == 1
    assert syncs.counts["device_copy"] == 1 and syncs.counts["to_host"] == 1
    with SyncCounter() as quiet:
        (t * 2 + 1).softmax(0).argsort()
    assert quiet.total == 0


def _counts(fn) -> dict[str, int]:
    with SyncCounter() as syncs:
        fn()
    return dict(syncs.counts)


@pytest.mark.parametrize("name", ["scorecam", "gradcam", "occlusion", "ablationcam"])
def test_a_sweep_looks_at_the_device_a_fixed_number_of_times(fpn, name):
    """3 and 64 masked images per chunk (up to 22 chunks against 1): the same count, at most 4."""
    fpn.eval()
    x = image_batch(1, 64, 64)
    option = {"occlusion": {"patch_size": 16, "stride": 8}}.get(name, {})
    small = get_method(name).cls(fpn, batch_size=3, **option) if name != "gradcam" else get_method(name).cls(fpn)
    large = get_method(name).cls(fpn, batch_size=64, **option) if name != "gradcam" else small
    small(x)  # the first call measures the layout
    large(x)
    few, many = _counts(lambda: large(x)), _counts(lambda: small(x))
    assert few == many and sum(many.values()) <= 4, (few, many)


@pytest.fixture
def metric_setup(fpn):
    fpn.eval()
    x = image_batch(1, 64, 64, seed=3)
    with torch.inference_mode():
        pred = fpn(x).argmax(1)[0]
    classes = [int(c) for c in pred.unique()][:3]
    regions = torch.stack([pred == c for c in classes])
    valid = torch.ones(64, 64, dtype=torch.bool)
    valid[:, 56:] = False  # padding on the right
    maps = {"a": torch.rand(len(classes), 64, 64, generator=torch.Generator().manual_seed(1)), "b": regions.float()}
    return fpn, x, classes, regions, valid, maps


BUDGET = {"deletion": 4, "insertion": 4, "road": 3, "average_drop_increase": 3, "context_deletion": 3}


@pytest.mark.parametrize("metric", sorted(BUDGET))
def test_a_metric_looks_at_the_device_a_fixed_number_of_times(metric_setup, metric):
    """batch 2 (dozens of chunks) and batch 64: the same looks, within the budget; ROAD's sync-free
    imputation (what a GPU runs) gives exactly the checked solver's numbers."""
    model, x, classes, regions, valid, maps = metric_setup
    kwargs: dict[str, object] = {"steps": 8} if metric in ("deletion", "insertion", "context_deletion") else {}
    if metric == "road":
        kwargs = {"percentiles": (20, 50, 80)}
    results, looks = {}, {}
    for batch in (2, 64):
        f = Faithfulness(model, x, classes, regions, valid, batch_size=batch, sync_free=True)
        f.shared_image("x")
        with SyncCounter() as syncs:
            results[batch] = getattr(f, metric)(maps, **kwargs)
        looks[batch] = dict(syncs.counts)
    assert looks[2] == looks[64] and sum(looks[2].values()) <= BUDGET[metric], looks
    # the checking CG solver, not the CPU's direct one (tests/test_imputation.py compares those)
    checked_faith = Faithfulness(model, x, classes, regions, valid, batch_size=64, sync_free=False, imputation="cg")
    checked = getattr(checked_faith, metric)(maps, **kwargs)
    assert repr(results[64]) == repr(checked)  # the same numbers, to the bit


def test_the_imputation_never_looks_and_matches_the_checking_solver():
    x = image_batch(1, 48, 40, seed=2)
    masks = torch.rand(5, 48, 40, generator=torch.Generator().manual_seed(0)) > 0.4
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(5)]  # noqa: E731
    converged = torch.zeros(5, dtype=torch.bool)
    with SyncCounter() as syncs:
        blind = noisy_linear_impute(x, masks, sync_free=True, converged=converged, generator=gens())
    assert syncs.total == 0 and bool(converged.all())
    assert torch.equal(blind, noisy_linear_impute(x, masks, sync_free=False, generator=gens(), solver="cg"))
