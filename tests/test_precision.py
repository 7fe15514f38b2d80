"""The precision policy and the measured memory layout (xai.precision)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_batch
from xai import precision
from xai.errors import XAIError
from xai.precision import _LAYOUTS, cpu_bf16, cpu_flags, cpu_has_fast_bf16, prefers_channels_last, resolve_precision


def test_auto_follows_the_hardware_found_at_run_time():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(XAIError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", cpu)


SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
EPYC_ROME = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_bf16_is_detected_from_the_cpus_flags(monkeypatch):
    """The flags decide (torch 2.14 has no probe): native bf16 with AMX-BF16 or AVX512-BF16, else fp32,
    and the manifest's numerics say why."""
    assert cpu_bf16(SAPPHIRE_RAPIDS) == (True, "the CPU has amx_bf16 and avx512_bf16: bf16 is native")
    native, why = cpu_bf16(EPYC_ROME)
    assert not native and why.startswith("the CPU has neither amx_bf16 nor avx512_bf16")
    assert cpu_bf16("") == (False, "the CPU's flags cannot be read here (no /proc/cpuinfo): fp32")
    cpu = torch.device("cpu")
    for text, expected in ((SAPPHIRE_RAPIDS, "bf16"), (EPYC_ROME, "fp32")):
        monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None, text=text: cpu_flags(text))
        assert resolve_precision("auto", cpu) == expected
        assert precision.numerics(cpu, {})["cpu_bf16"] == cpu_bf16(text)[1]


@pytest.mark.skipif(not precision.CPUINFO.is_file(), reason="no /proc/cpuinfo on this system")
def test_the_probe_reads_this_machines_flags():
    """What the detection reads exists and is read: a probe that silently returned nothing (as torch's
    _is_avx512_bf16_supported lookup did) fails here."""
    flags = cpu_flags()
    assert flags, "no CPU flags read from /proc/cpuinfo"
    text = precision.CPUINFO.read_text(encoding="utf-8", errors="replace")
    assert cpu_has_fast_bf16() == any(f" {f}" in text for f in precision.BF16_FLAGS)


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
