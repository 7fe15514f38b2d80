"""Shared fixtures (helpers live in tests/helpers.py)."""
from __future__ import annotations

import pytest
import torch

from tests.helpers import gt_batch, image_batch, tiny_fpn  # noqa: F401 (gt_batch, image_batch: until every test imports tests.helpers)

torch.set_num_threads(2)


@pytest.fixture
def fpn() -> torch.nn.Module:
    return tiny_fpn()


@pytest.fixture
def sigmoid_fpn() -> torch.nn.Module:
    return tiny_fpn(activation="sigmoid", seed=1)
