"""Bootstrap means and paired differences (xai.evaluation.stats)."""

from __future__ import annotations

import math

import numpy as np

from xai.evaluation.stats import bootstrap_mean, paired_difference


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.normal(1.0, 1.0, 10).tolist())
    large = bootstrap_mean(rng.normal(1.0, 1.0, 1000).tolist())
    for e in (small, large):
        assert e.low <= e.mean <= e.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert abs(large.mean - 1.0) < 0.1 and large.low < 1.0 < large.high
    assert bootstrap_mean([1.0, 2.0, 3.0]) == bootstrap_mean([1.0, 2.0, 3.0])  # seeded: reproducible


def test_nan_values_are_left_out_and_small_n_says_so():
    e = bootstrap_mean([1.0, float("nan"), 3.0, None])  # None is left out like NaN
    assert e.n == 2 and e.mean == 2.0
    one = bootstrap_mean([5.0])
    assert one.n == 1 and math.isnan(one.low) and one.text() == "5.000 (n=1)"
    none = bootstrap_mean([])
    assert none.n == 0 and none.text() == "n/a" and none.as_dict()["mean"] is None


def test_paired_difference_uses_samples_that_have_both():
    a = {"s0": 1.0, "s1": 2.0, "s2": 5.0}
    b = {"s0": 0.5, "s1": 1.0, "s3": 9.0}
    d = paired_difference(a, b)
    assert d.n == 2 and d.mean == (0.5 + 1.0) / 2
