"""Shared fixtures: tiny smp models with seeded random weights and small inputs."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


def tiny_fpn(activation: str | None = None, seed: int = 0, classes: int = 5) -> torch.nn.Module:
    """FPN on resnet18 with few decoder channels; seeded, eval mode, BN statistics made non-trivial."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    model = smp.FPN("resnet18", encoder_weights=None, classes=classes, activation=activation,
                    decoder_pyramid_channels=32, decoder_segmentation_channels=32)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def fpn() -> torch.nn.Module:
    return tiny_fpn()


@pytest.fixture
def sigmoid_fpn() -> torch.nn.Module:
    return tiny_fpn(activation="sigmoid", seed=1)


def image_batch(n: int = 2, h: int = 32, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


def gt_batch(n: int = 2, h: int = 32, w: int = 64, classes: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (n, h, w), generator=g)
