"""XGrad-CAM against the reference written from its formula."""

from __future__ import annotations

import pytest

from tests.reference import GRADIENT_GRID, assert_gradient_method_matches
from xai import XGradCAM


@pytest.mark.parametrize("score,region,activation", GRADIENT_GRID)
def test_matches_reference(score, region, activation):
    assert_gradient_method_matches(XGradCAM, "xgradcam", score, region, activation)
