"""--eval_precision: the evaluation's forward passes at fp32, tf32, bf16 or fp16, auto choosing bf16 where
the hardware runs it natively (the CPU's flags, simulated here); what ran is recorded, and fp32 is what
ran before the option existed."""

from __future__ import annotations

import json
from typing import Any

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


def test_an_unknown_precision_is_refused_and_auto_follows_the_cpu(monkeypatch):
    model, x = tiny_fpn(), image_batch(1, 64, 64)
    with pytest.raises(XAIError, match="fp64"):
        _faithfulness(model, x, precision="fp64")
    for text, ran in ((SAPPHIRE_RAPIDS, "bf16"), (EPYC_ROME, "fp32")):
        monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None, text=text: cpu_flags(text))
        assert _faithfulness(model, x, precision="auto").precision == ran


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


# Every perturbation metric of a fixed model, image and maps as commit 55dd697 computed them (before
# --eval_precision and before equal maps shared their images), tests/pin_case below; fp32 must keep them.
NAN = float("nan")
PINNED = {
    "deletion_linear": {
        "a": [NAN, 0.5007857011657998, 0.6309052451212673, 0.4167047019288458, 0.5282743999844678],
        "agnostic": [NAN, 0.510379009127605, 0.6298338550853193, 0.4497869698430153, 0.5079449749832112],
    },
    "deletion_area": {
        "a": [NAN, 0.5064587240401379, 0.6484535127614784, 0.45582367986043076, 0.4465751928447556],
        "agnostic": [NAN, 0.5176156236034912, 0.6428799757936198, 0.49606894491979514, 0.4786683478572915],
    },
    "insertion_linear": {
        "a": [NAN, 0.5172932689522919, 0.6437538328265414, 0.42216582429833627, 0.43791674340884856],
        "agnostic": [NAN, 0.5108363980239327, 0.6201691848804439, 0.4158200025997776, 0.4667247799024868],
    },
    "road_gap": {
        "a": [NAN, -0.00500373328582171, -0.0011060490526935511, -0.004198966656208373, -0.04480557683120926],
        "agnostic": [NAN, 0.0578018386203509, 0.008821393027651466, -0.034737645380445326, -0.12917518853393495],
    },
    "average_drop": {
        "a": [NAN, 9.133254080356, 0.0, 11.02263858727162, 8.995813877393692],
        "agnostic": [NAN, 4.542212899285719, 4.731221681831486, 10.356866686124647, 0.0],
    },
    "context_deletion": {
        "a": [NAN, 0.5705690321887138, 0.5531523035646353, 0.4357778297878365, 0.4922842128172277],
        "agnostic": [NAN, 0.5580527902746466, 0.5503483483487872, 0.46393524360857263, 0.5461713222896941],
    },
}


def test_fp32_numbers_are_those_of_before_the_option_and_the_sharing():
    model, x = tiny_fpn(), image_batch(1, 64, 64, seed=3)
    with torch.inference_mode():
        pred = model(x).argmax(1)[0]
    regions = torch.stack([pred == c for c in range(5)])
    valid = torch.ones(64, 64, dtype=torch.bool)
    valid[:, 56:] = False
    g = torch.Generator().manual_seed(1)
    maps = {"a": torch.rand(5, 64, 64, generator=g), "agnostic": torch.rand(1, 64, 64, generator=g).expand(5, -1, -1)}
    f = Faithfulness(model, x, list(range(5)), regions, valid, batch_size=8, precision="fp32")
    got: dict[str, dict[str, list[Any]]] = {
        "deletion_linear": f.deletion(maps, steps=8),
        "deletion_area": f.deletion(maps, steps=8, schedule="area"),
        "insertion_linear": f.insertion(maps, steps=8),
        "road_gap": f.road(maps, percentiles=(20, 50, 80), seed=0),
        "average_drop": f.average_drop_increase(maps),
        "context_deletion": f.context_deletion(maps, steps=8),
    }
    field = {"road_gap": "gap", "average_drop": "drop"}
    for metric, per_map in PINNED.items():
        for name, expected in per_map.items():
            values = [getattr(r, field.get(metric, "auc")) for r in got[metric][name]]
            tolerance = 1e-4 if metric == "average_drop" else 1e-6  # Average Drop is in percent: 1e-6 of the score
            assert values == pytest.approx(expected, abs=tolerance, nan_ok=True), (metric, name)
    assert f.forwards["deletion_linear"] == 7 * 4 + 7  # 4 present classes of "a", one shared map for "agnostic"
