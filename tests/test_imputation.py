"""Noisy linear imputation (ROAD) against a dense direct solve of the authors' system."""

from __future__ import annotations

import pytest
import torch

from tests import metric_reference as ref
from tests.metric_reference import one_thread  # noqa: F401 (autouse fixture)
from xai.errors import XAIError
from xai.metrics.imputation import noisy_linear_impute, push_pull_fill


def _case(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image and its valid mask: the last 3 columns and the last row are padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, h, w, generator=g)
    valid = torch.ones(h, w, dtype=torch.bool)
    valid[:, -3:] = False
    valid[-1, :] = False
    return x, valid


@pytest.mark.parametrize("solver", ["cg", "direct"])
def test_matches_dense_solve_with_border_and_padding_neighbours(solver):
    x, valid = _case(12, 16, seed=0)
    g = torch.Generator().manual_seed(1)
    remove = torch.rand(4, 12, 16, generator=g) < torch.tensor([0.1, 0.4, 0.7, 0.9]).view(4, 1, 1)
    remove[0, 0, :] = True  # the top border row
    remove[1, :, 0] = True  # the left border column
    remove[2, :, 12] = True  # beside the padding columns
    remove[3, 10, :] = True  # beside the padding row
    remove[0, 0, 0] = remove[0, 10, 12] = True  # corners: image corner, padding corner
    out = noisy_linear_impute(x, remove, valid, noise=0.0, solver=solver)
    assert out.shape == (4, 3, 12, 16)
    for m in range(4):
        expected = ref.impute(x, remove[m], valid)
        assert (out[m].double() - expected).abs().max() <= 1e-4


@pytest.mark.parametrize("solver", ["cg", "direct"])
def test_large_holes_converge_through_several_levels(solver):
    """MoRF-like: one smooth map's top 85% removed from a 40×72 image (a V-cycle of 4 levels)."""
    x, valid = _case(40, 72, seed=2)
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(72.0), indexing="ij")
    cam = torch.exp(-((yy - 15) ** 2 + (xx - 30) ** 2) / 400)
    threshold = cam[valid].quantile(0.15)
    remove = (cam > threshold) & valid
    out = noisy_linear_impute(x, remove, valid, noise=0.0, solver=solver)
    assert (out[0].double() - ref.impute(x, remove, valid)).abs().max() <= (1e-4 if solver == "cg" else 1e-6)


def test_kept_pixels_and_padding_keep_their_values():
    x, valid = _case(12, 16, seed=3)
    remove = torch.ones(12, 16, dtype=torch.bool)
    remove[5, 5] = False  # one kept pixel: every valid pixel but it is removed
    out = noisy_linear_impute(x, remove, valid, noise=0.05, generator=torch.Generator().manual_seed(0))[0]
    assert torch.equal(out[:, ~valid], x[:, ~valid])
    assert torch.equal(out[:, 5, 5], x[:, 5, 5])
    # without noise the only kept value spreads everywhere: the harmonic fill of one value is constant
    flat = noisy_linear_impute(x, remove, valid, noise=0.0)[0]
    assert torch.allclose(flat[:, valid], x[:, 5, 5].view(3, 1).expand(3, int(valid.sum())), atol=1e-4)


def test_noise_is_seeded_absolute_and_only_on_removed_pixels():
    x, valid = _case(48, 64, seed=4)
    remove = torch.zeros(48, 64, dtype=torch.bool)
    remove[::2] = True
    clean = noisy_linear_impute(x, remove, valid, noise=0.0)
    a = noisy_linear_impute(x, remove, valid, noise=0.01, generator=torch.Generator().manual_seed(7))
    b = noisy_linear_impute(x, remove, valid, noise=0.01, generator=torch.Generator().manual_seed(7))
    c = noisy_linear_impute(x, remove, valid, noise=0.01, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    diff = (a - clean)[0]
    removed = remove & valid
    assert torch.equal(diff[:, ~removed], torch.zeros_like(diff[:, ~removed]))
    assert abs(float(diff[:, removed].std()) - 0.01) < 0.001
    assert abs(float(diff[:, removed].mean())) < 0.001


def test_one_generator_per_mask_makes_results_independent_of_the_batch():
    x, valid = _case(16, 24, seed=5)
    g = torch.Generator().manual_seed(2)
    remove = torch.rand(3, 16, 24, generator=g) < 0.5
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    together = noisy_linear_impute(x, remove, valid, generator=gens([10, 11, 12]))
    alone = torch.cat([noisy_linear_impute(x, remove[m], valid, generator=gens([10 + m])) for m in range(3)])
    assert (together - alone).abs().max() <= 1e-5
    with pytest.raises(XAIError, match="generators"):
        noisy_linear_impute(x, remove, valid, generator=gens([1, 2]))


def test_push_pull_fill_keeps_known_values_and_fills_holes_from_them():
    values = torch.zeros(1, 1, 8, 8)
    weight = torch.zeros(1, 1, 8, 8)
    values[0, 0, 0, 0], weight[0, 0, 0, 0] = 2.0, 1.0
    filled = push_pull_fill(values, weight)
    assert torch.allclose(filled, torch.full_like(filled, 2.0))
    assert torch.equal(push_pull_fill(values, torch.zeros_like(weight)), torch.zeros_like(values))


def test_bad_shapes_are_refused():
    x, valid = _case(12, 16, seed=6)
    with pytest.raises(XAIError, match="do not match"):
        noisy_linear_impute(x, torch.zeros(12, 15, dtype=torch.bool), valid)
    with pytest.raises(XAIError, match="one image"):
        noisy_linear_impute(torch.zeros(2, 3, 12, 16), torch.zeros(12, 16, dtype=torch.bool), valid)


def test_a_tiny_case_is_pinned():
    """The removed pixels of a 4×5 image (one padding column) with noise from one generator per mask or
    one for all, by the checking and the sync-free solver: the numbers this implementation gives."""
    x = torch.arange(20.0).view(1, 4, 5).sin()
    valid = torch.ones(4, 5, dtype=torch.bool)
    valid[:, 4] = False
    remove = torch.zeros(2, 4, 5, dtype=torch.bool)
    remove[0, 1:3, 1:3] = remove[0, 0, 0] = True
    remove[1, :, :2] = remove[1, 3, 4] = True  # a padding pixel: never removed
    gens = lambda: [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]  # noqa: E731
    out = noisy_linear_impute(x, remove, valid, noise=0.05, generator=gens(), solver="cg")
    converged = torch.zeros(2, dtype=torch.bool)
    free = noisy_linear_impute(x, remove, valid, noise=0.05, generator=gens(), sync_free=True, converged=converged)
    one = noisy_linear_impute(x, remove, valid, noise=0.05, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, free) and converged.tolist() == [True, True]
    direct = noisy_linear_impute(x, remove, valid, noise=0.05, generator=gens(), solver="direct")
    assert torch.allclose(direct, out, atol=1e-5, rtol=0)  # the same system; CG stops at its tolerance
    expected = {
        "per mask": [
            [-0.080862, 0.087587, 0.375486, -0.145903, -0.161482],
            [0.223893, 0.524269, 0.083586, 0.24806, -0.108549, -0.11636, -0.178901, -0.419658],
        ],
        "one": [
            [-0.080862, 0.003577, 0.367029, -0.236985, -0.022981],
            [0.293275, 0.493711, 0.177533, 0.257788, -0.050955, -0.224007, -0.30782, -0.426472],
        ],
    }
    for name, result in (("per mask", out), ("one", one)):
        for m in range(2):
            assert torch.equal(result[m, :, ~(remove[m] & valid)], x[:, ~(remove[m] & valid)])
            got = result[m, 0][remove[m] & valid]
            assert torch.allclose(got, torch.tensor(expected[name][m]), atol=1e-5, rtol=0), (name, m, got.tolist())


def test_a_group_of_removed_pixels_that_touches_no_kept_pixel_takes_the_fill_as_cg_leaves_it():
    """Every pixel of V removed: no equation pins the values (A is singular); both solvers leave the
    push-pull fill (0 here: nothing of V is known). A second, anchored group is solved as usual."""
    x, valid = _case(12, 16, seed=4)
    everything = valid.clone()
    out = {s: noisy_linear_impute(x, everything, valid, noise=0.0, solver=s) for s in ("cg", "direct")}
    assert torch.equal(out["cg"], out["direct"]) and not out["direct"][0][:, valid].any()
    island = torch.zeros(12, 16, dtype=torch.bool)
    island[2:5, 2:5] = True
    both = torch.stack([everything, island])
    direct = noisy_linear_impute(x, both, valid, noise=0.0, solver="direct")
    assert (direct[1].double() - ref.impute(x, island, valid)).abs().max() <= 1e-6


def test_an_unknown_solver_is_refused():
    x, valid = _case(12, 16, seed=0)
    with pytest.raises(XAIError, match="solver"):
        noisy_linear_impute(x, valid, valid, solver="gauss")
