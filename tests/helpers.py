"""Tiny smp models with seeded random weights and small inputs, shared by the tests."""

from __future__ import annotations

import torch


def tiny_fpn(activation: str | None = None, seed: int = 0, classes: int = 5) -> torch.nn.Module:
    """FPN on resnet18 with few decoder channels; seeded, eval mode, BN statistics made non-trivial."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    model = smp.FPN(
        "resnet18",
        encoder_weights=None,
        classes=classes,
        activation=activation,
        decoder_pyramid_channels=32,
        decoder_segmentation_channels=32,
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def image_batch(n: int = 2, h: int = 32, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, h, w, generator=g)


def gt_batch(n: int = 2, h: int = 32, w: int = 64, classes: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (n, h, w), generator=g)


class ConvNet(torch.nn.Module):
    """A plain conv net that takes any input size (smp models need multiples of 32)."""

    def __init__(self, features: torch.nn.Sequential):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        return torch.nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def tiny_convnet(classes: int = 3, seed: int = 0) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 6, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(6, classes, 1),
        )
    ).eval()


class CountingModel(torch.nn.Module):
    """Wraps a model, recording the batch size of every forward pass."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        return self.inner(x)


def top_variance_channels(model: torch.nn.Module, x: torch.Tensor, layer: str, n: int) -> list[int]:
    """The n channels of largest spatial variance of `layer` on one image (what max_activation_maps keeps)."""
    acts: dict[str, torch.Tensor] = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    h.remove()
    var = acts["a"][0].flatten(1).var(1, unbiased=False)
    return sorted(var.argsort(descending=True)[:n].tolist())


def run_args(ckpt, data, out, *extra: str) -> list[str]:
    """CLI arguments of a small, fast run on the tiny dataset (tests/conftest.py: tiny_run)."""
    return [
        "--model_path",
        str(ckpt),
        "--data_root",
        str(data),
        "--output_dir",
        str(out),
        "--num_samples",
        "2",
        "--max_activation_maps",
        "4",
        "--batch_size",
        "4",
        "--no_progress",
        "--workers",
        "2",
        *extra,
    ]
