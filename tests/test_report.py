"""The evaluation report from sample records: long CSV, summary with intervals, paired differences, plots."""

from __future__ import annotations

import csv
import json

import numpy as np

from xai.evaluation.report import write_report
from xai.pipeline.records import SampleRecord


def _record(i: int, rng: np.random.Generator) -> SampleRecord:
    rows = []
    for cname in ("root", "seed"):
        for variant, method, base in (
            ("scorecam", "scorecam", 0.2),
            ("gradcam", "gradcam", 0.4),
            ("random", "reference", 0.6),
        ):
            value = base + 0.01 * i if not (cname == "seed" and i == 0) else None
            rows.append(
                {
                    "class": cname,
                    "method": method,
                    "variant": variant,
                    "metric": "deletion_auc_linear",
                    "value": value,
                    "reason": None if value is not None else "class absent from its region",
                }
            )
            rows.append(
                {
                    "class": cname,
                    "method": method,
                    "variant": variant,
                    "metric": "seconds",
                    "value": 1.0 + base,
                    "reason": None,
                }
            )
    curves = {
        v: {
            "root": {
                "deletion_linear": list(np.linspace(1, 0, 11) ** (1 + k)),
                "insertion_linear": list(np.linspace(0, 1, 11)),
            }
        }
        for k, v in enumerate(("scorecam", "gradcam", "random"))
    }
    sanity = {
        "scorecam": {
            "steps": ["segmentation_head", "decoder", "encoder.layer4"],
            "rho": {"root": [0.8, 0.3, 0.05], "seed": [0.7, 0.2, 0.0]},
        }
    }
    return SampleRecord(
        id=f"sample{i}",
        index=i,
        name=f"img{i}.png",
        status="done",
        run_key={},
        run={},
        metrics=rows,
        curves=curves,
        sanity=sanity if i < 2 else {},
    )


def test_report_files_numbers_and_plots(tmp_path):
    rng = np.random.default_rng(0)
    records = [_record(i, rng) for i in range(4)]
    info = write_report(tmp_path, records, {"model": "m.safetensors", "split": "test", "notes": ["a note"]})
    assert info is not None and info["variants"] == ["scorecam", "gradcam", "random"]
    with open(tmp_path / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["sample", "image", "class", "method", "variant", "metric", "value", "reason"]
    assert len(rows) == 4 * 2 * 3 * 2
    absent = [r for r in rows if r["sample"] == "sample0" and r["class"] == "seed" and r["metric"].startswith("del")]
    assert all(r["value"] == "" and r["reason"] == "class absent from its region" for r in absent)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    root = summary["summary"]["root"]["scorecam"]["deletion_auc_linear"]
    assert root["n"] == 4 and abs(root["mean"] - (0.2 + 0.015)) < 1e-9 and root["ci_low"] <= root["mean"]
    assert summary["summary"]["seed"]["scorecam"]["deletion_auc_linear"]["n"] == 3
    (paired,) = summary["paired_differences"]  # default: the first variant against each other one
    assert (paired["minuend"], paired["subtrahend"]) == ("scorecam", "gradcam")
    assert abs(paired["per_class"]["root"]["deletion_auc_linear"]["mean"] - (-0.2)) < 1e-9
    assert summary["sanity"]["steps"] == ["segmentation_head", "decoder", "encoder.layer4"]
    assert np.allclose(summary["sanity"]["mean_spearman"]["scorecam"], [0.75, 0.25, 0.025])
    md = (tmp_path / "report.md").read_text()
    assert "## Class root" in md and "Paired difference scorecam − gradcam" in md and "![" in md
    html = (tmp_path / "report.html").read_text()
    assert (
        '<table class="data">' in html and 'src="report/curves_root.png"' in html and 'src="report/sanity.png"' in html
    )
    for png in ("report/curves_root.png", "report/sanity.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "report" / "curves_seed.png").exists()  # no curves recorded for seed


def test_no_metrics_no_report(tmp_path):
    plain = SampleRecord(id="sample0", index=0, name="a.png", status="done", run_key={}, run={})
    assert write_report(tmp_path, [plain], {}) is None
    assert list(tmp_path.iterdir()) == []


def test_a_claim_is_called_only_on_an_interval_that_excludes_zero_from_five_samples_on():
    from xai.evaluation.report import _verdict
    from xai.evaluation.stats import Estimate

    assert _verdict(Estimate(0.3, 0.1, 0.5, 6), "higher", "better") == "holds"
    assert _verdict(Estimate(0.3, 0.1, 0.5, 6), "lower", "better") == "does not hold: the opposite"
    assert _verdict(Estimate(-0.3, -0.5, -0.1, 6), "lower", "better") == "holds"
    assert _verdict(Estimate(0.1, -0.1, 0.3, 6), "higher", "better") == "not shown (the interval spans 0)"
    assert _verdict(Estimate(2.0, 1.0, 3.0, 6), "lower", "higher") == "holds"  # "slower": higher seconds
    assert _verdict(Estimate(0.3, 0.1, 0.5, 2), "higher", "better") == "too few samples to tell (n=2)"
    assert _verdict(Estimate(float("nan"), float("nan"), float("nan"), 0), "higher", "better") == "not measurable here"
