"""The precision policy and the measured memory layout (xai.precision)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from xai.errors import XAIError
from xai.precision import _LAYOUTS, cpu_has_fast_bf16, prefers_channels_last, resolve_precision


def test_auto_follows_the_hardware_found_at_run_time():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(XAIError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)


def test_layout_is_measured_once_and_the_model_left_as_it_was(fpn):
    fpn.train()
    fpn.decoder.to(memory_format=torch.channels_last)
    formats = {n: p.is_contiguous() for n, p in fpn.named_parameters()}
    stats = {n: b.clone() for n, b in fpn.named_buffers()}
    x = image_batch(2, 32, 64)
    first = prefers_channels_last(fpn, x, "fp32")
    assert isinstance(first, bool) and list(_LAYOUTS[fpn]) == [("cpu", "fp32", (3, 32, 64))]
    _LAYOUTS[fpn][("cpu", "fp32", (3, 32, 64))] = not first  # a cached answer is not measured again
    assert prefers_channels_last(fpn, x, "fp32") is (not first)
    assert {n: p.is_contiguous() for n, p in fpn.named_parameters()} == formats
    assert all(torch.equal(b, stats[n]) for n, b in fpn.named_buffers())  # no batch-norm update while timing
    assert fpn.training and fpn.decoder.training


def test_tf32_is_an_explicit_choice_and_fp32_means_ieee_fp32(monkeypatch):
    """torch's default lets cuDNN run fp32 convolutions in TF32; fp32 turns that off, tf32 on, and both
    restore the settings after the block (also after an error)."""
    from xai import precision

    cpu = torch.device("cpu")
    assert resolve_precision("tf32", cpu) == "fp32"  # no TF32 on a CPU: what runs is fp32
    monkeypatch.setattr(precision, "device_runs_tf32", lambda device: True)
    assert resolve_precision("tf32", torch.device("cuda", 0)) == "tf32"
    before = precision.float32_settings()
    with precision.autocast("fp32", cpu):
        assert precision.float32_settings() == {"matmul": "ieee", "conv": "ieee"}
        with precision.autocast("tf32", cpu):
            assert precision.float32_settings() == {"matmul": "tf32", "conv": "tf32"}
        assert precision.float32_settings() == {"matmul": "ieee", "conv": "ieee"}
    with pytest.raises(RuntimeError), precision.autocast("bf16", cpu):
        assert precision.float32_settings() == {"matmul": "ieee", "conv": "ieee"}
        assert torch.is_autocast_enabled("cpu")
        raise RuntimeError("injected")
    assert precision.float32_settings() == before and not torch.is_autocast_enabled("cpu")


def test_explainers_and_metrics_run_ieee_fp32_whatever_the_global_setting(fpn, monkeypatch):
    """A method's forward, backward and the evaluation's forwards see TF32 off even where the process
    turned it on; a Score-CAM asked for tf32 sees it on in its masked forwards only."""
    from xai import precision
    from xai.methods import get_method
    from xai.metrics.faithfulness import Faithfulness

    seen: list[dict[str, str]] = []
    fpn.segmentation_head.register_forward_hook(lambda *_: seen.append(precision.float32_settings()))
    fpn.eval()
    x = image_batch(1, 64, 64)
    monkeypatch.setattr(precision, "device_runs_tf32", lambda device: True)  # pretend: an Ampere GPU
    with precision.float32_math(tf32=True):
        get_method("gradcam").cls(fpn)(x)
        assert seen and all(s == {"matmul": "ieee", "conv": "ieee"} for s in seen)
        seen.clear()
        cam = get_method("scorecam").cls(fpn, precision="tf32", max_activation_maps=4, memory_format="contiguous")
        assert cam.options.precision == "tf32"
        cam(x)
        assert seen[0] == {"matmul": "ieee", "conv": "ieee"}  # the forward of x
        assert {"matmul": "tf32", "conv": "tf32"} in seen[1:]  # the masked forwards
        seen.clear()
        valid = torch.ones(64, 64, dtype=torch.bool)
        Faithfulness(fpn, x, [1], torch.ones(1, 64, 64, dtype=torch.bool), valid, batch_size=4).deletion(
            {"m": torch.rand(1, 64, 64)}, steps=4
        )
        assert seen and all(s == {"matmul": "ieee", "conv": "ieee"} for s in seen)
