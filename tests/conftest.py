"""Shared fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
import torch

from tests.helpers import tiny_fpn

# two test processes (pytest-xdist, `make test`) on the two cores: one thread each; alone: two
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture
def fpn() -> torch.nn.Module:
    return tiny_fpn()


@pytest.fixture
def sigmoid_fpn() -> torch.nn.Module:
    return tiny_fpn(activation="sigmoid", seed=1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(folder, data root, checkpoint): 14 synthetic 60×120 seedlings and a seeded tiny FPN at 64×64."""
    from xai.checkpoint import save_checkpoint
    from xai.config import DEFAULT_CLASSES
    from xai.synth import make_dataset

    base = tmp_path_factory.mktemp("run")
    data = base / "data"
    make_dataset(data, n=14, seed=5, size=(60, 120))
    model = tiny_fpn(seed=0)
    ckpt = base / "model.pth"
    save_checkpoint(ckpt, model, arch="FPN", encoder="resnet18", classes=list(DEFAULT_CLASSES), img_size=(64, 64))
    return base, data, ckpt
