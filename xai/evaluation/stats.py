"""Summary statistics of per-sample values: mean with a 95% percentile-bootstrap interval.

For values v_1..v_n (one per sample; NaN entries are left out), the interval is the 2.5th and 97.5th
percentiles of the means of B resamples of n values drawn with replacement (seeded, so a report is
reproducible). A paired difference uses the per-sample differences a_i − b_i of samples that have both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
MIN_VERDICT_SAMPLES = 5  # fewer paired samples give a bootstrap interval too unstable to call a difference on


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 3) -> str:
        """'0.123 [0.100, 0.150] (n=12)', or 'n/a' without values."""
        if self.n == 0:
            return "n/a"
        if self.n == 1 or math.isnan(self.low):
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] (n={self.n})"

    def as_dict(self) -> dict[str, float | int | None]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {"mean": clean(self.mean), "ci_low": clean(self.low), "ci_high": clean(self.high), "n": self.n}


def bootstrap_mean(values: Sequence[float | None], resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean and 95% bootstrap interval of the finite values (NaN interval for fewer than 2)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    if v.size == 1:
        return Estimate(float(v[0]), math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(v.mean()), float(low), float(high), int(v.size))


def paired_difference(a: dict[str, float], b: dict[str, float], resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean of a_i − b_i over the keys (samples) where both are finite, with its bootstrap interval."""
    diffs = [a[k] - b[k] for k in sorted(a) if k in b and np.isfinite(a[k]) and np.isfinite(b[k])]
    return bootstrap_mean(diffs, resamples, seed)
