"""The claim metrics on crafted maps with known answers (xai.metrics.claims) and context deletion."""

from __future__ import annotations

import math

import torch

from tests.metric_reference import PatchModel
from xai.metrics import claims
from xai.metrics.faithfulness import Faithfulness

H, W = 24, 32


def num(value: float | None) -> float:
    """A measured value that must exist."""
    assert value is not None
    return value


def _valid():
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[:, 28:] = False  # padding
    return valid


def test_a_map_equal_to_its_region_has_an_unbounded_ring_ratio_and_no_ring_share():
    region = torch.zeros(H, W, dtype=torch.bool)
    region[8:14, 6:12] = True
    ratio, share = claims.ring(region.float(), region, _valid(), width=3)
    assert ratio == math.inf and share == 0.0
    blurred = torch.nn.functional.avg_pool2d(region.float()[None, None], 5, 1, 2)[0, 0]
    ratio, share = claims.ring(blurred, region, _valid(), width=3)
    assert 1 < num(ratio) < math.inf and 0 < num(share) < 1


def test_complexity_is_maximal_for_a_uniform_map_and_sparseness_is_its_opposite():
    valid = _valid()
    uniform, peak = torch.ones(H, W), torch.zeros(H, W)
    peak[3, 4] = 1.0
    assert math.isclose(num(claims.complexity(uniform, valid)), 1.0) and num(claims.complexity(peak, valid)) == 0.0
    assert abs(num(claims.sparseness(uniform, valid))) < 1e-12
    n = int(valid.sum())
    assert math.isclose(num(claims.sparseness(peak, valid)), (n - 1) / n)  # one pixel: the Gini index's maximum
    ramp = torch.linspace(0, 1, H * W).view(H, W)
    assert 0 < num(claims.complexity(ramp, valid)) < 1 and 0 < num(claims.sparseness(ramp, valid)) < (n - 1) / n
    assert claims.complexity(torch.zeros(H, W), valid) is None


def test_a_map_that_ignores_the_noise_has_max_sensitivity_zero():
    m = torch.rand(H, W, generator=torch.Generator().manual_seed(0))
    change, rho = claims.max_sensitivity([m.clone(), m.clone()], m, _valid())
    assert change == 0.0 and math.isclose(num(rho), 1.0)
    worse = [m, m + 0.5 * torch.rand(H, W, generator=torch.Generator().manual_seed(1))]
    change, rho = claims.max_sensitivity(worse, m, _valid())
    expected = float((worse[1] - m)[_valid()].norm() / m[_valid()].norm())
    assert math.isclose(num(change), expected, rel_tol=1e-6) and num(rho) < 1


def test_an_instance_map_inside_its_component_has_share_one():
    a, b = torch.zeros(H, W, dtype=torch.bool), torch.zeros(H, W, dtype=torch.bool)
    a[2:6, 2:6], b[12:20, 14:22] = True, True
    assert num(claims.instance_share(a.float(), a, a | b)) == 1.0
    half = a.float() + b.float()
    assert math.isclose(num(claims.instance_share(half, a, a | b)), 16 / (16 + 64))


def test_objects_are_binned_by_area_and_located_without_the_others():
    truth = torch.zeros(H, W, dtype=torch.bool)
    truth[1:3, 1:3] = True  # 4 px: small
    truth[10:20, 10:20] = True  # 100 px: large
    small, medium, large = claims.component_bins(truth, (10, 50))
    assert int(small.sum()) == 4 and int(medium.sum()) == 0 and int(large.sum()) == 100
    on_small = small.float()
    epg, rank = claims.size_localisation(on_small, truth, small, _valid())
    assert epg == 1.0 and rank == 1.0  # the large object does not count against the small one
    assert claims.size_localisation(on_small, truth, large, _valid()) == (None, None)  # no energy left there
    faint = on_small + 0.01  # and a little everywhere: the large object holds 100 of the 24·28 − 4 pixels left
    epg, _ = claims.size_localisation(faint, truth, large, _valid())
    assert epg is not None and math.isclose(epg, 100 / (24 * 28 - 4), rel_tol=1e-6)
    assert claims.size_localisation(on_small, truth, medium, _valid()) == (None, None)


def test_context_deletion_never_touches_the_region():
    model = PatchModel(patch=(8, 16, 8, 16))  # class 1 depends on the patch only
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(2))
    regions = torch.zeros(2, H, W, dtype=torch.bool)
    regions[1, 8:16, 8:16] = True
    regions[0] = ~regions[1]
    maps = {"any": torch.rand(2, H, W, generator=torch.Generator().manual_seed(3))}
    faith = Faithfulness(model, x, [0, 1], regions, _valid())
    result = faith.context_deletion(maps, steps=6)["any"]
    curve = result[1].curve
    assert curve is not None and torch.allclose(curve[1], curve[1][:1].expand(7), atol=1e-9)  # only the patch matters
    assert faith.forwards["context_deletion"] == 2 * 6
    total = int((_valid() & ~regions[1]).sum())
    assert result[1].pixels is not None and int(result[1].pixels[-1]) == total
