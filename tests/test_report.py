"""The evaluation report from sample records: long CSV, summary with intervals, paired differences, plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from typing import Any

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


# ---- the verdicts: the report's first section ------------------------------------------------------------------

HOSTILE = "<img src=x onerror=alert(1)>"
REFERENCES = {"random": "reference", "probability": "reference", "sobel": "reference"}


def _measured(
    values: Mapping[tuple[str, str, str], Sequence[float | str]],
    sanity: dict[tuple[str, str], list[float]] | None = None,
) -> list[SampleRecord]:
    """Records of constructed numbers: values {(class, variant, metric): per sample a value, or the reason
    (str) it has none}; sanity {(class, variant): per sample |ρ| after the whole model is randomised}."""
    n = len(next(iter(values.values())))
    records = []
    for i in range(n):
        rows = [
            {
                "class": c,
                "method": REFERENCES.get(v, v),
                "variant": v,
                "metric": m,
                "value": None if isinstance(x[i], str) else x[i],
                "reason": x[i] if isinstance(x[i], str) else None,
            }
            for (c, v, m), x in values.items()
        ]
        checked: dict[str, Any] = {}
        for (c, v), rhos in (sanity or {}).items():
            entry = checked.setdefault(v, {"steps": ["segmentation_head", "encoder"], "rho": {}})
            entry["rho"][c] = [0.9, rhos[i]]
        records.append(
            SampleRecord(
                id=f"sample{i}",
                index=i,
                name=f"img{i}.png",
                status="done",
                run_key={},
                run={},
                metrics=rows,
                sanity=checked,
            )
        )
    return records


def _spread(centre: float, shift: int = 0, step: float = 0.01) -> list[float]:
    """8 values with mean centre, spread by ±0.035 in an order that `shift` changes."""
    return [centre + step * ((k * 5 + shift) % 8 - 3.5) for k in range(8)]


def _verdict_of(out, cname: str, measure: str) -> dict[str, Any]:
    found = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["verdicts"]
    (one,) = [v for v in found if v["class"] == cname and v["measure"] == measure]
    return one


def test_a_clearly_best_method_is_separated_from_the_next_and_beats_the_references(tmp_path):
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        ("root", "scorecam", "deletion_auc_area"): _spread(0.20),
        ("root", "gradcam", "deletion_auc_area"): _spread(0.50, 1),
        ("root", "random", "deletion_auc_area"): _spread(0.80, 2),
        ("root", "probability", "deletion_auc_area"): _spread(0.60, 3),
    }
    sanity = {("root", "scorecam"): [0.05] * 8, ("root", "gradcam"): [0.6 + 0.01 * (k % 3) for k in range(8)]}
    write_report(tmp_path, _measured(values, sanity), {"model": "m", "split": "test"})
    v = _verdict_of(tmp_path, "root", "deletion_auc_area")
    assert v["best"] == "scorecam" and v["better"] == "lower" and v["separated"] is True
    assert abs(v["estimate"]["mean"] - 0.20) < 0.01 and v["estimate"]["ci_low"] < v["estimate"]["ci_high"]
    assert v["next_best"]["variant"] == "gradcam" and v["next_best"]["outcome"] == "better"
    assert v["next_best"]["difference"]["ci_high"] < 0  # paired scorecam − gradcam, lower is better
    assert [(r["variant"], r["outcome"]) for r in v["references"]] == [("random", "better"), ("probability", "better")]
    checked = _verdict_of(tmp_path, "root", "randomised_spearman")
    assert checked["best"] == "scorecam" and checked["separated"] is True and checked["references"] == []
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if "Deletion AUC (area)" in line and line.startswith("|"))
    assert "[scorecam](#class-root): 0.200 [" in row and "(n=8)" in row
    assert "yes, from [gradcam](#class-root) (Δ -0.300 [" in row
    assert (
        "beats [random](#class-root) (Δ -0.600 [" in row and "(n=8)) and [probability](#class-root) (Δ -0.400 [" in row
    )
    assert "[scorecam](#sanity-check-cascading-randomisation): 0.050" in md
    assert "## Class root" in md and "## Sanity check: cascading randomisation" in md  # the links' headings


def test_overlapping_methods_are_not_separated(tmp_path):
    score = _spread(0.30)
    grad = [x + (0.05 if k % 2 else -0.04) for k, x in enumerate(score)]
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        ("root", "scorecam", "insertion_auc_area"): score,
        ("root", "gradcam", "insertion_auc_area"): grad,
    }
    write_report(tmp_path, _measured(values), {"model": "m", "split": "test"})
    v = _verdict_of(tmp_path, "root", "insertion_auc_area")
    assert v["best"] == "gradcam" and v["better"] == "higher"  # the higher mean, by 0.005
    assert v["separated"] is False and v["next_best"]["outcome"] == "not separated"
    assert v["next_best"]["difference"]["ci_low"] < 0 < v["next_best"]["difference"]["ci_high"]
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "no, from [scorecam](#class-root) (Δ 0.005 [" in md


def test_a_best_method_that_does_not_beat_the_references_says_so(tmp_path):
    score = _spread(0.40)
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        ("root", "scorecam", "deletion_auc_area"): score,
        ("root", "gradcam", "deletion_auc_area"): _spread(0.70),
        ("root", "random", "deletion_auc_area"): [x + (0.03 if k % 2 else -0.03) for k, x in enumerate(score)],
        ("root", "probability", "deletion_auc_area"): _spread(0.10),
    }
    write_report(tmp_path, _measured(values), {"model": "m", "split": "test"})
    v = _verdict_of(tmp_path, "root", "deletion_auc_area")
    assert v["best"] == "scorecam" and v["separated"] is True  # the best method ...
    outcomes = {r["variant"]: r["outcome"] for r in v["references"]}
    assert outcomes == {"random": "not separated", "probability": "worse"}  # ... but not better than the references
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "not separated from [random](#class-root)" in md and "worse than [probability](#class-root)" in md


def test_a_question_not_measured_says_so_with_what_would_measure_it(tmp_path):
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        ("root", "scorecam", "deletion_auc_area"): _spread(0.2),
        ("root", "scorecam", "energy_pointing_game"): ["no ground truth"] * 8,
        ("seed", "scorecam", "deletion_auc_area"): ["class absent from its region"] * 8,
    }
    write_report(tmp_path, _measured(values), {"model": "m", "split": None})  # no ROAD, stability, sanity rows
    assert _verdict_of(tmp_path, "root", "deletion_auc_area")["best"] == "scorecam"
    expected = {
        ("root", "road_gap"): "not measured: ROAD runs unless --no_road is given",
        (
            "root",
            "energy_pointing_game",
        ): "not measured: it needs ground-truth masks, a split (--split) rather than --images",
        ("root", "max_sensitivity"): "not measured: --stability_samples N (N > 0) measures it",
        ("root", "noise_spearman"): "not measured: --stability_samples N (N > 0) measures it",
        ("root", "randomised_spearman"): "not measured: --sanity_samples N (N > 0) measures it on the first N samples",
        ("seed", "deletion_auc_area"): "not measured: no value for this class: class absent from its region",
    }
    for (cname, measure), text in expected.items():
        v = _verdict_of(tmp_path, cname, measure)
        assert v["best"] is None and v["not_measured"] == text, (cname, measure)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for text in expected.values():
        assert text in md and text.replace(">", "&gt;") in html


def test_hostile_names_stay_text_in_the_verdicts(tmp_path):
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        (HOSTILE, HOSTILE, "deletion_auc_area"): _spread(0.2),
        (HOSTILE, "gradcam", "deletion_auc_area"): _spread(0.5),
    }
    write_report(tmp_path, _measured(values), {"model": "m", "split": "test"})
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "onerror=alert(1)&gt;" in html
    assert '<a href="#class-img-srcx-onerroralert1">&lt;img src=x onerror=alert(1)&gt;</a>' in html  # the method
    assert '<h2 id="class-img-srcx-onerroralert1">' in html  # the heading it links to
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "[\\<img src=x onerror=alert(1)>](#class-img-srcx-onerroralert1)" in md  # no HTML in the verdicts


def test_the_report_opens_with_its_verdicts(tmp_path):
    records = [_record(i, np.random.default_rng(0)) for i in range(4)]
    write_report(tmp_path, records, {"model": "m.safetensors", "split": "test", "notes": ["a note"]})
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    after_title = html.split("</h1>", 1)[1].lstrip()
    assert after_title.startswith('<h2 id="verdicts">Verdicts</h2>')
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert [line for line in md.splitlines() if line.startswith("#")][:2] == [
        "# Faithfulness of the explanations: m.safetensors",
        "## Verdicts",
    ]
    assert md.index("## Verdicts") < md.index("## Samples and settings") < md.index("## Class root")


def test_outcome_reads_the_paired_difference_or_else_the_intervals():
    from xai.evaluation.stats import Estimate
    from xai.evaluation.verdicts import BETTER, NOT_SEPARATED, TOO_FEW, WORSE, outcome

    low, high = Estimate(0.2, 0.15, 0.25, 10), Estimate(0.5, 0.45, 0.55, 10)
    assert outcome(low, high, None, "lower") == BETTER  # intervals apart
    assert outcome(high, low, None, "higher") == BETTER
    assert outcome(low, Estimate(0.3, 0.22, 0.38, 10), None, "lower") == NOT_SEPARATED  # intervals overlap
    assert outcome(low, high, Estimate(-0.3, -0.35, -0.25, 10), "lower") == BETTER  # the paired one decides
    assert outcome(low, high, Estimate(-0.3, -0.6, 0.01, 10), "lower") == NOT_SEPARATED
    assert outcome(low, high, Estimate(0.1, 0.05, 0.15, 10), "lower") == WORSE
    assert outcome(low, high, Estimate(-0.3, -0.35, -0.25, 4), "lower") == TOO_FEW  # under 5 paired samples
    assert outcome(low, Estimate(0.5, float("nan"), float("nan"), 1), None, "lower") == TOO_FEW


def test_verdicts_from_statistics_alone_rank_methods_not_references():
    from xai.evaluation.stats import Estimate
    from xai.evaluation.verdicts import QUESTIONS, verdicts

    pixels = QUESTIONS[:1]
    stats = {
        "root": {
            "probability": {"deletion_auc_area": Estimate(0.05, 0.02, 0.08, 10)},  # best of all, but a reference
            "gradcam": {"deletion_auc_area": Estimate(0.2, 0.15, 0.25, 10)},
            "scorecam": {"deletion_auc_area": Estimate(0.5, 0.45, 0.55, 10)},
        }
    }
    deletion, insertion = verdicts(stats, ["probability"], questions=pixels)
    assert deletion.best == "gradcam" and deletion.separated is True and deletion.runner_up is not None
    assert deletion.runner_up.variant == "scorecam" and deletion.runner_up.difference is None  # intervals compared
    assert [(c.variant, c.outcome) for c in deletion.references] == [("probability", "worse")]
    assert insertion.best is None and insertion.not_measured == "not measured: no value on any sample"
    (alone,) = verdicts({"root": {"gradcam": stats["root"]["gradcam"]}}, [], questions=pixels)[:1]
    assert alone.best == "gradcam" and alone.runner_up is None and alone.separated is None


def test_a_method_that_does_not_beat_the_sobel_map_is_marked_in_the_tables_and_the_verdicts(tmp_path):
    """Deletion AUC (lower is better): scorecam beats sobel, gradcam is worse than it; insertion AUC (higher
    is better): both beat it. Only gradcam's deletion cell gets the mark, and only gradcam a verdict line."""
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        ("root", "scorecam", "deletion_auc_area"): _spread(0.20),
        ("root", "gradcam", "deletion_auc_area"): _spread(0.55, 1),
        ("root", "sobel", "deletion_auc_area"): _spread(0.40, 2),
        ("root", "random", "deletion_auc_area"): _spread(0.80, 3),
        ("root", "scorecam", "insertion_auc_area"): _spread(0.70),
        ("root", "gradcam", "insertion_auc_area"): _spread(0.60, 1),
        ("root", "sobel", "insertion_auc_area"): _spread(0.30, 2),
        ("root", "random", "insertion_auc_area"): _spread(0.20, 3),
    }
    write_report(tmp_path, _measured(values), {"model": "m", "split": "test"})
    deletion = _verdict_of(tmp_path, "root", "deletion_auc_area")
    assert deletion["best"] == "scorecam"
    floor = {b["method"]: b["against"] for b in deletion["baseline"]}
    assert set(floor) == {"scorecam", "gradcam"} and {f["variant"] for f in floor.values()} == {"sobel"}
    assert floor["scorecam"]["outcome"] == "better" and floor["gradcam"]["outcome"] == "worse"
    assert abs(floor["gradcam"]["difference"]["mean"] - 0.15) < 1e-9  # gradcam − sobel
    insertion = _verdict_of(tmp_path, "root", "insertion_auc_area")
    assert {b["method"]: b["against"]["outcome"] for b in insertion["baseline"]} == {
        "scorecam": "better",
        "gradcam": "better",
    }
    summary = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert summary["references"]["sobel"]["role"] == "model-free baseline"
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    table = md[md.index("## Class root") :]
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert rows["gradcam"].count("†") == 1  # its deletion mean, not its insertion mean
    deletion_cell, insertion_cell = rows["gradcam"].split(" | ")[1:3]
    assert deletion_cell.endswith("(n=8) †") and "†" not in insertion_cell
    assert "†" not in rows["scorecam"] and "†" not in rows["sobel"] and "†" not in rows["random"]
    assert "†: not better than sobel (model-free baseline: the Sobel edge map" in table
    verdicts_part = md[: md.index("## Samples and settings")]
    lines = [line for line in verdicts_part.splitlines() if line.startswith("| [")]
    (gradcam,) = [line for line in lines if line.startswith("| [gradcam](#class-root) †")]
    assert "Deletion AUC (area) (↓): worse than [sobel](#class-root) (Δ 0.150 [" in gradcam
    assert gradcam.rstrip(" |").endswith("Insertion AUC (area) (↑)")  # beats it there
    (scorecam,) = [line for line in lines if line.startswith("| [scorecam](#class-root)")]
    assert "†" not in scorecam and "| — |" in scorecam  # beats sobel on every measure
    assert "worse than [sobel]" not in scorecam
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "(n=8) †</td>" in html and "does not beat sobel on" in html


def test_without_a_sobel_map_nothing_is_marked(tmp_path):
    values: dict[tuple[str, str, str], Sequence[float | str]] = {
        ("root", "scorecam", "deletion_auc_area"): _spread(0.20),
        ("root", "gradcam", "deletion_auc_area"): _spread(0.55, 1),
    }
    write_report(tmp_path, _measured(values), {"model": "m", "split": "test"})
    assert _verdict_of(tmp_path, "root", "deletion_auc_area")["baseline"] == []
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "†" not in md and "model-free" not in md


def test_every_method_not_only_the_best_is_compared_with_the_baseline():
    from xai.evaluation.stats import Estimate
    from xai.evaluation.verdicts import QUESTIONS, verdicts

    stats = {
        "root": {
            "sobel": {"deletion_auc_area": Estimate(0.4, 0.35, 0.45, 10)},
            "scorecam": {"deletion_auc_area": Estimate(0.2, 0.15, 0.25, 10)},  # beats it: intervals apart
            "gradcam": {"deletion_auc_area": Estimate(0.38, 0.30, 0.46, 10)},  # a lower mean, intervals overlap
            "layercam": {"deletion_auc_area": Estimate(0.6, 0.55, 0.65, 10)},  # worse
        }
    }
    deletion, _ = verdicts(stats, ["sobel"], questions=QUESTIONS[:1], baselines=["sobel"])
    assert deletion.best == "scorecam" and [(c.variant, c.outcome) for c in deletion.references] == [
        ("sobel", "better")
    ]
    assert [(b.method, b.comparison.variant, b.comparison.outcome, b.beats) for b in deletion.baseline] == [
        ("scorecam", "sobel", "better", True),
        ("gradcam", "sobel", "not separated", False),
        ("layercam", "sobel", "worse", False),
    ]
    (plain, _) = verdicts(stats, ["sobel"], questions=QUESTIONS[:1])  # no baseline declared: no comparisons
    assert plain.baseline == ()
