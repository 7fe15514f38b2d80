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
