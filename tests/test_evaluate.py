"""--evaluate end to end: metrics for every variant and class, references, fast-variant fidelity, sanity
steps, the report linked from the gallery, resume and --finalize keeping all of it."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest

from tests.helpers import run_args
from xai.cli import main

VARIANTS = ["scorecam:maps=2", "gradcam:layer=encoder.layer3"]
METRICS = {
    "deletion_auc_linear",
    "deletion_auc_area",
    "insertion_auc_linear",
    "insertion_auc_area",
    "road_morf",
    "road_lerf",
    "road_gap",
    "average_drop",
    "average_increase",
    "energy_pointing_game",
    "pointing_game",
    "rank_accuracy",
}


@pytest.fixture(scope="module")
def evaluated(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "evaluated"
    if not out.exists():
        args = run_args(
            ckpt,
            data,
            out,
            "--methods",
            "gradcam,scorecam",
            "--evaluate",
            "--variants",
            *VARIANTS,
            "--eval_steps",
            "6",
            "--sanity_samples",
            "1",
        )
        assert main("scorecam", args) == 0
    return out


def test_every_variant_class_and_metric_has_a_value_or_a_reason(evaluated):
    with open(evaluated / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    variants = {"gradcam", "scorecam", *VARIANTS, "random", "probability", "sobel"}
    assert {r["variant"] for r in rows if r["method"] != "context_dependence"} == variants
    assert {r["method"] for r in rows if r["variant"] in ("random", "probability", "sobel")} == {"reference"}
    for sample in ("sample0", "sample1"):
        for v in variants:
            for c in ("background", "root", "hypocotyl", "cotyledon", "seed"):
                got = {r["metric"]: r for r in rows if (r["sample"], r["variant"], r["class"]) == (sample, v, c)}
                assert set(got) >= METRICS, (sample, v, c, METRICS - set(got))
                for r in got.values():
                    assert (r["value"] != "" and math.isfinite(float(r["value"]))) or r["reason"], r
    fast = [r for r in rows if r["metric"] == "pearson_vs_full"]
    assert fast and {r["variant"] for r in fast} == {"scorecam:maps=2"}
    assert any(r["value"] and -1 <= float(r["value"]) <= 1 for r in fast)
    assert {r["variant"] for r in rows if r["metric"] == "seconds"} == {"gradcam", "scorecam", *VARIANTS}


def test_report_sanity_and_gallery_link(evaluated):
    summary = json.loads((evaluated / "metrics.json").read_text())
    pairs = [(p["minuend"], p["subtrahend"]) for p in summary["paired_differences"]]
    assert pairs == [("gradcam", v) for v in ("scorecam", *VARIANTS)]  # the first method against each other one
    assert summary["sanity"]["steps"][0] == "segmentation_head" and summary["sanity"]["steps"][-1] == "encoder.stem"
    html = (evaluated / "report.html").read_text()
    assert "Class root" in html and "Cascading randomisation" in html
    assert 'href="report.html"' in (evaluated / "gallery.html").read_text()
    assert 'href="report.html"' in (evaluated / "index.html").read_text()
    record = json.loads((evaluated / "samples" / "sample0.json").read_text())
    assert set(record["sanity"]) == {"gradcam", "scorecam", *VARIANTS}  # the first sample only
    assert not json.loads((evaluated / "samples" / "sample1.json").read_text())["sanity"]
    curves = record["curves"]["scorecam"]["root"]
    assert len(curves["deletion_linear"]) == 7 and len(curves["insertion_area"]) == 7
    manifest = json.loads((evaluated / "manifest.json").read_text())
    assert manifest["evaluation"]["settings"]["eval_steps"] == 6 and manifest["evaluation"]["report"] == "report.html"
    assert set(manifest["evaluation"]["variants"]) == {"gradcam", "scorecam", *VARIANTS}


def test_the_context_matrix_reaches_metrics_csv_the_report_and_its_figure(evaluated):
    """Per sample: every explained class × (each class's region, near and far background) × both
    replacements, a value or a reason; 2 forwards per non-empty replaced region, counted in the cost."""
    with open(evaluated / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "context_dependence"]
    classes = ("background", "root", "hypocotyl", "cotyledon", "seed")
    regions = {*classes, "background_near", "background_far"}
    for sample in ("sample0", "sample1"):
        mine = [r for r in rows if r["sample"] == sample]
        assert {(r["class"], r["variant"], r["metric"]) for r in mine} == {
            (c, k, m) for c in classes for k in regions for m in ("context_mean_colour", "context_imputed")
        }
        assert len(mine) == len(classes) * len(regions) * 2
        assert all((r["value"] != "" and math.isfinite(float(r["value"]))) or r["reason"] for r in mine)
        record = json.loads((evaluated / "samples" / f"{sample}.json").read_text())
        empty = {r["variant"] for r in mine if r["reason"].startswith("the replaced region is empty")}
        assert record["evaluation_cost"]["forwards"]["context_dependence"] == 2 * (len(regions) - len(empty))
    summary = json.loads((evaluated / "metrics.json").read_text())
    assert set(summary["context"]) == {"mean colour", "imputed"}
    assert "context_dependence" not in summary["variants"].values()
    report = (evaluated / "report.md").read_text()
    assert "## Context dependence" in report and "report/context_dependence.png" in report
    assert (evaluated / "report" / "context_dependence.png").is_file()


def test_finalize_rebuilds_the_report_and_resume_keeps_the_metrics(tiny_run, evaluated, tmp_path):
    _base, data, ckpt = tiny_run
    files = ("metrics.csv", "metrics.json", "report.md", "report.html", "index.html", "gallery.html", "manifest.json")
    written = {f: (evaluated / f).read_bytes() for f in files}
    copy = tmp_path / "copy"
    shutil.copytree(evaluated, copy)
    for f in files:
        (copy / f).unlink()
    assert main("gradcam", ["--finalize", str(copy)]) == 0
    assert {f: (copy / f).read_bytes() for f in files} == written
    args = run_args(
        ckpt,
        data,
        copy,
        "--methods",
        "gradcam,scorecam",
        "--evaluate",
        "--variants",
        *VARIANTS,
        "--eval_steps",
        "6",
        "--sanity_samples",
        "1",
        "--resume",
    )
    import xai.pipeline.explain_stage as stage

    real = stage.explain_samples
    calls: list[int] = []

    def counted(items, execution):
        calls.extend(item.index for item in items)
        return real(items, execution)

    stage.explain_samples = counted
    try:
        assert main("scorecam", args) == 0
        assert calls == []  # complete under the same evaluation settings
        changed = [a if a != "6" else "8" for a in args]  # other --eval_steps: the metrics are redone
        assert main("scorecam", changed) == 0
        assert calls == [0, 1]
    finally:
        stage.explain_samples = real


def test_seed_000s_claims_are_measured_and_reported(tiny_run, tmp_path):
    _base, data, ckpt = tiny_run
    out = tmp_path / "claims"
    args = run_args(ckpt, data, out, "--compare", "--evaluate", "--region", "instances", "--no_road")
    assert main("scorecam", [*args, "--eval_steps", "4", "--sanity_samples", "0", "--stability_samples", "2"]) == 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    measured = {r["metric"] for r in rows if r["variant"] == "scorecam"}
    for name in (
        "max_sensitivity",
        "noise_spearman",
        "energy_pointing_game_small",
        "ring_ratio",
        "complexity",
        "sparseness",
        "energy_outside",
        "context_deletion_auc",
        "instance_share",
    ):
        assert name in measured, name
    for r in rows:  # every value exists or says why not
        assert (r["value"] != "" and math.isfinite(float(r["value"]))) or r["reason"], r
    assert {r["variant"] for r in rows if r["metric"] == "max_sensitivity"} == {"gradcam", "scorecam"}
    report = (out / "report.md").read_text()
    assert "## The manual's claims, measured" in report
    assert "| Stability | more stable | Max-sensitivity (↓) |" in report and "scorecam − gradcam" in report
    manifest = json.loads((out / "manifest.json").read_text())
    settings = manifest["evaluation"]["settings"]
    assert settings["instances"] and settings["stability_samples"] == 2


@pytest.mark.parametrize("map_dtype", ["uint8", "float32"])
def test_maps_the_evaluation_makes_are_rounded_as_the_runs_maps(map_dtype):
    """With zero noise the noisy copy is the map itself: max-sensitivity is exactly 0 only when the copy is
    rounded to the run's map_dtype as the run's own map was (unrounded, uint8 would leave up to 1/510)."""
    import torch

    import xai
    from tests.helpers import image_batch, tiny_convnet
    from xai.evaluation.evaluate import EvaluationSettings
    from xai.evaluation.measures import Context, stability
    from xai.mapfile import as_stored

    model = tiny_convnet(classes=3, seed=2)
    x = image_batch(1, 16, 16, seed=1)  # predicts 16 pixels of class 0, 240 of class 1
    engine = xai.GradCAM(model, target_layer="features.1")
    valid = torch.ones(16, 16, dtype=torch.bool)
    result = engine.explain(x, classes=[0, 1], valid=valid[None])
    assert result.prediction is not None
    settings = EvaluationSettings(map_dtype=map_dtype, stability_samples=1, stability_radius=0.0)
    regions = torch.stack([result.prediction[0] == c for c in (0, 1)])
    ctx = Context(
        model=model,
        index=0,
        x=x,
        gt=result.prediction[0],
        valid=valid,
        classes=[0, 1],
        regions=regions,
        maps={"gradcam": as_stored(result.maps[0], map_dtype)},
        settings=settings,
        prediction=result.prediction[0],
        engines={"gradcam": engine},
    )
    rows = {(j, measure.name): value for _, j, measure, value in stability(ctx)}
    assert result.maps[0].flatten(1).amax(1).min() > 0  # both classes have a map to compare
    assert [rows[(j, "max_sensitivity")].value for j in range(2)] == [0.0, 0.0]
