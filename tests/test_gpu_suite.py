"""bench/gpu_suite.py (the GPU figures' script) runs its own code on the CPU with --quick and writes one JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_suite_runs_on_the_cpu_and_says_what_it_could_not_measure(tmp_path, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import gpu_suite

    compiles: list[object] = []

    def pass_through(model: torch.nn.Module, **kw: object) -> torch.nn.Module:  # the path, not inductor
        compiles.append(model)
        return model

    monkeypatch.setattr(torch, "compile", pass_through)

    out = tmp_path / "suite.json"
    assert gpu_suite.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    runs = result["scorecam"]
    assert {k.rsplit("/", 1)[0] for k in runs} == {
        f"{layer}/{p}" for layer in ("decoder", "encoder.layer4") for p in ("fp32", "tf32", "bf16")
    }
    assert {k.rsplit("/", 1)[1] for k in runs} == {"batch32", "batchauto"}
    assert 1 <= runs["decoder/fp32/batchauto"]["batch_ran"] <= 32  # the CPU's cap
    fp32 = runs["decoder/fp32/batch32"]
    assert fp32["ran_as"] == "fp32" and fp32["max_abs_error_vs_cpu_fp32"] == 0.0 and fp32["seconds"] > 0
    assert runs["decoder/tf32/batch32"]["ran_as"] == "fp32"  # no TF32 on a CPU: said, not pretended
    assert runs["decoder/bf16/batch32"]["min_pearson_vs_cpu_fp32"] > 0.99
    assert result["out_of_memory"] == {"measured": False, "reason": "needs a CUDA device (a real allocation failure)"}
    compiled = result["compile"]
    assert compiled["eager"]["seconds_per_call"] > 0 and compiled["compile"]["seconds_per_call"] > 0
    assert compiled["compile"]["max_abs_difference_vs_eager"] == 0.0
    assert compiled["cudnn_benchmark"] == {"seconds": None, "reason": "cuDNN runs on CUDA devices only"}
    evaluation = result["evaluation"]
    assert evaluation["fp32"]["ran_as"] == "fp32" and evaluation["tf32"]["ran_as"] == "fp32"  # said, not pretended
    assert evaluation["tf32"]["max_abs_difference_vs_fp32"] == 0.0  # the same computation on a CPU
    assert 0 < evaluation["bf16"]["max_abs_difference_vs_fp32"] < 0.1 and evaluation["bf16"]["ran_as"] == "bf16"
    assert evaluation["fp32_compile"]["max_abs_difference_vs_fp32"] == 0.0  # torch.compile is stubbed here
    assert evaluation["fp32"]["forwards_per_sample"] == evaluation["bf16"]["forwards_per_sample"] > 0
    assert len(compiles) == 1  # one compilation per model (xai.compilation), shared by Score-CAM and the evaluation
    for per_call in ("per_call_1", "per_call_4"):
        assert result["pipeline"][per_call]["wall"] > 0
    assert "gpu_suite" in sys.modules
