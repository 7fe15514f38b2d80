"""A method, its options and a metric are each one declaration: a new file alone reaches every output."""

from __future__ import annotations

import csv
import json
import textwrap

import numpy as np
import pytest
import torch

import xai.methods
from tests.helpers import run_args
from xai.checkpoint import load_model
from xai.cli import build_parser, main
from xai.config import DEFAULT_CLASSES
from xai.mapfile import as_stored, load_maps
from xai.methods import registry
from xai.metrics import registry as metric_registry
from xai.metrics.faithfulness import Faithfulness
from xai.targets import region_masks

POWER_CAM = '''
"""Power-CAM, a method that is not in the repository: Grad-CAM's weights, positive part, to a power."""

from dataclasses import dataclass

import torch

from xai.evaluation.measures import Measure, Value, metric
from xai.methods import CAMOptions, GradientCAM, register
from xai.options import option


@dataclass(frozen=True)
class PowerCAMOptions(CAMOptions):
    power: float = option(1.0, "exponent of the positive channel weights", key="p", minimum=0)


@register("powercam", label="Power-CAM")
class PowerCAM(GradientCAM):
    Options = PowerCAMOptions

    def gradient_weights(self, grads, acts):
        return grads.mean(dim=(2, 3)).clamp_min(0) ** self.options.power


MAP_MEAN = Measure("map_mean", "Mean of the map", "lower")


@metric(MAP_MEAN, cost="no forward pass")
def map_mean(ctx):
    for label, j in ctx.each_map_and_class():
        yield label, j, MAP_MEAN, Value(float(ctx.maps[label][j][ctx.valid].float().mean()))
'''


def test_a_new_method_file_and_its_metric_reach_every_output(tiny_run, tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "powercam.py").write_text(textwrap.dedent(POWER_CAM), encoding="utf-8")
    registry.methods()  # the packaged methods are registered before the registry is swapped for a copy
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(metric_registry, "_METRICS", dict(metric_registry._METRICS))
    monkeypatch.setattr(xai.methods, "__path__", [*xai.methods.__path__, str(plugins)])

    help_text = " ".join(build_parser("gradcam").format_help().split())
    assert "powercam (Power-CAM)" in help_text and "--power POWER exponent of the positive channel weights" in help_text
    _base, data, ckpt = tiny_run
    out = tmp_path / "run"
    extra = ("--methods", "gradcam,powercam", "--compare", "--evaluate", "--variants", "powercam:p=2")
    evaluation = ("--eval_steps", "4", "--no_road", "--sanity_samples", "0", "--num_samples", "1", "--workers", "0")
    assert main("gradcam", run_args(ckpt, data, out, *extra, *evaluation)) == 0

    assert len(list((out / "powercam_maps").glob("sample0_powercam_*.png"))) == 5  # its figures
    assert (out / "comparison" / "sample0_comparison.png").is_file()
    assert "Power-CAM" in (out / "gallery.html").read_text(encoding="utf-8")  # the gallery's rows
    header = (out / "summary.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"powercam_energy_in_gt", "powercam_seconds"} <= set(header)  # the summaries
    assert "powercam" in load_maps(out / "raw_maps" / "sample0.npz").maps  # the raw maps
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["variant"] for r in rows if r["metric"] == "map_mean"} >= {"gradcam", "powercam", "powercam:p=2"}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Mean of the map (↓)" in report  # the new metric's column, with its direction
    assert "Paired difference gradcam − powercam " in report and "Paired difference gradcam − powercam:p=2" in report
    pairs = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["paired_differences"]
    assert any("map_mean" in per for p in pairs for per in p["per_class"].values())
    record = json.loads((out / "samples" / "sample0.json").read_text(encoding="utf-8"))
    assert record["run_key"]["engines"]["powercam"]["power"] == 1.0  # its options in the resume key
    assert record["run_key"]["evaluation"]["variants"]["powercam:p=2"]["options"]["power"] == 2.0
    assert record["run"]["engines"]["powercam"]["power"] == 1.0  # and in the manifest

    # an option of the new method is a flag, and a changed value redoes the samples on --resume
    assert main("gradcam", run_args(ckpt, data, out, *extra, *evaluation, "--power", "3", "--resume")) == 0
    again = json.loads((out / "samples" / "sample0.json").read_text(encoding="utf-8"))
    assert again["run_key"]["engines"]["powercam"]["power"] == 3.0 and again["finished"] > record["finished"]


@pytest.mark.parametrize("map_dtype", ["float16", "uint8"])
def test_the_maps_file_holds_the_very_map_the_evaluation_measured(tiny_run, tmp_path, map_dtype):
    """Deletion AUC recomputed from raw_maps/sample0.npz equals the reported one: one normalised map, rounded
    to the file's map_dtype once, while the engine itself returns full float32."""
    _base, data, ckpt = tiny_run
    out = tmp_path / "eval"
    args = ("--evaluate", "--eval_steps", "5", "--no_road", "--sanity_samples", "0", "--num_samples", "1")
    assert main("gradcam", run_args(ckpt, data, out, *args, "--batch_size", "7", "--map_dtype", map_dtype)) == 0
    saved = load_maps(out / "raw_maps" / "sample0.npz")
    assert saved.map_dtype == map_dtype and saved.maps["gradcam"].dtype == np.float32
    model = load_model(ckpt, classes=list(DEFAULT_CLASSES)).model.eval()
    from xai.pipeline import RunOptions, prepare

    setup = prepare(RunOptions(model_path=str(ckpt), data_root=str(data), methods=("gradcam",), command=["t"]))
    x = setup.dataset[0]["image"].unsqueeze(0)
    valid = torch.from_numpy(saved.letterbox.valid())
    full = setup.engines["gradcam"].explain(x, classes=saved.class_ids, valid=valid[None]).maps[0]
    stored = torch.from_numpy(saved.maps["gradcam"][saved.class_ids])
    assert full.dtype == torch.float32 and not torch.equal(as_stored(full, map_dtype), full)  # the library: full
    half_step = {"float16": 2.0**-12, "uint8": 0.5 / 255}[map_dtype]
    assert 0 < float((stored - full).abs().max()) <= half_step + 1e-6  # the file: the engine's map, rounded
    classes = saved.class_ids
    regions = region_masks(
        torch.from_numpy(saved.pred_input.astype(np.int64))[None], None, classes, "pred", len(DEFAULT_CLASSES)
    )[0].bool()
    maps = torch.from_numpy(saved.maps["gradcam"][classes])
    ours = Faithfulness(model, x, classes, regions, valid).deletion({"gradcam": maps}, steps=5)["gradcam"]
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        reported = {
            r["class"]: r["value"]
            for r in csv.DictReader(fh)
            if r["variant"] == "gradcam" and r["metric"] == "deletion_auc_linear"
        }
    for j, c in enumerate(classes):
        name = DEFAULT_CLASSES[c]
        if reported[name] == "":
            assert ours[j].reason is not None
        else:
            # the same map; the forwards ran at another batch size and memory layout (fp32 summation order)
            assert abs(ours[j].auc - float(reported[name])) < 1e-6, name
