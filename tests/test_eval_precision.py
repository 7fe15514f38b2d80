"""--eval_precision: the evaluation's forward passes at fp32, tf32, bf16 or fp16, auto choosing bf16 where
the hardware runs it natively (the CPU's flags, simulated here); what ran is recorded, and fp32 is what
ran before the option existed."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import image_batch, run_args, tiny_fpn
from tests.test_precision import EPYC_ROME, SAPPHIRE_RAPIDS
from xai import precision
from xai.cli import main
from xai.errors import XAIError
from xai.metrics.faithfulness import Faithfulness
from xai.precision import cpu_flags, precision_choice

CPU = torch.device("cpu")


def _faithfulness(model: torch.nn.Module, x: torch.Tensor, **kw) -> Faithfulness:
    regions = torch.zeros(2, *x.shape[-2:], dtype=torch.bool)
    regions[0, :32], regions[1, 32:] = True, True
    valid = torch.ones(x.shape[-2:], dtype=torch.bool)
    return Faithfulness(model, x, [1, 2], regions, valid, batch_size=4, **kw)


class DtypeSpy:
    """The dtypes of every convolution's output during the forwards (autocast's lower precision shows here)."""

    def __init__(self, model: torch.nn.Module):
        self.seen: set[torch.dtype] = set()
        self.handles = [
            m.register_forward_hook(lambda _m, _i, out: self.seen.add(out.dtype))
            for m in model.modules()
            if isinstance(m, torch.nn.Conv2d)
        ]


@pytest.mark.parametrize(("asked", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_forwards_run_at_the_precision_asked_and_nothing_else_does(asked, dtype):
    model, x = tiny_fpn(), image_batch(1, 64, 64)
    spy = DtypeSpy(model)
    faith = _faithfulness(model, x, precision=asked)
    maps = {"m": torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(0))}
    deletion = faith.deletion(maps, steps=4)
    assert spy.seen == {dtype}
    # the curve's scores are float64 sums of fp32 probabilities whatever the forward's precision
    curve = deletion["m"][0].curve
    assert curve is not None and curve[1].dtype == torch.float64


def test_fp32_is_what_ran_before_the_option_and_bf16_moves_the_numbers_a_little():
    model, x = tiny_fpn(), image_batch(1, 64, 64)
    maps = {"m": torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(0))}
    default = _faithfulness(model, x).deletion(maps, steps=4)["m"]
    fp32 = _faithfulness(model, x, precision="fp32").deletion(maps, steps=4)["m"]
    bf16 = _faithfulness(model, x, precision="bf16").deletion(maps, steps=4)["m"]
    assert [r.auc for r in default] == [r.auc for r in fp32]
    moved = max(abs(a.auc - b.auc) for a, b in zip(fp32, bf16, strict=True))
    assert 0 < moved < 0.05  # bf16 is a different computation, close to fp32's on this model


def test_an_unresolved_or_unknown_precision_is_refused():
    model, x = tiny_fpn(), image_batch(1, 64, 64)
    for bad in ("auto", "fp64"):
        with pytest.raises(XAIError, match="precision"):
            _faithfulness(model, x, precision=bad)


def test_auto_is_bf16_on_a_cpu_with_native_bf16_and_says_why(monkeypatch):
    for text, ran in ((SAPPHIRE_RAPIDS, "bf16"), (EPYC_ROME, "fp32")):
        monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None, text=text: cpu_flags(text))
        choice = precision_choice("auto", CPU)
        assert choice["asked"] == "auto" and choice["ran"] == ran
        assert choice["why"] == precision.cpu_bf16(text)[1]
    assert precision_choice("bf16", CPU) == {"asked": "bf16", "ran": "bf16", "why": "as asked"}
    assert precision_choice("tf32", CPU) == {"asked": "tf32", "ran": "fp32", "why": "the device has no TF32: fp32"}


@pytest.fixture(scope="module")
def evaluated_bf16(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "evaluated_bf16"
    args = run_args(ckpt, data, out, "--methods", "gradcam", "--evaluate", "--eval_steps", "3", "--no_road")
    args += ["--num_samples", "1", "--stability_samples", "0", "--sanity_samples", "0", "--eval_precision", "bf16"]
    assert main("scorecam", args) == 0
    return out


def test_the_manifest_and_the_report_say_what_the_evaluation_ran_in(evaluated_bf16):
    manifest = json.loads((evaluated_bf16 / "manifest.json").read_text())
    ran = {"asked": "bf16", "ran": "bf16", "why": "as asked"}
    assert manifest["evaluation"]["precision"] == ran
    assert manifest["numerics"]["evaluation_forwards"] == ran
    assert manifest["evaluation"]["settings"]["eval_precision"] == "bf16"
    report = (evaluated_bf16 / "report.md").read_text()
    assert "the evaluation's forward passes ran in bf16 (--eval_precision bf16: as asked)" in report


def test_a_bad_eval_precision_is_one_line_exit_2(tiny_run, tmp_path, capsys):
    _, data, ckpt = tiny_run
    args = run_args(ckpt, data, tmp_path / "out", "--methods", "gradcam", "--evaluate", "--eval_precision", "fp64")
    with pytest.raises(SystemExit) as exc:
        main("scorecam", args)
    assert exc.value.code == 2
    assert "fp64" in capsys.readouterr().err
