#!/usr/bin/env python
"""The defaults table of docs/evidence.md from a run's metrics.json (bench/defaults_evidence.sh writes one).

Per class: every variant's mean over the samples (95% bootstrap interval in the report itself) of
deletion and insertion AUC (linear and area schedules), Average Drop/Increase, the energy pointing
game and seconds per sample; the best non-reference variant of each column in bold; then, per metric,
which variant wins on how many classes. With --paired A:B (variant labels as in the run), the paired
per-sample differences A − B of each metric per class with their 95% bootstrap intervals, read from
metrics.csv beside metrics.json (an interval that excludes 0 is a difference the samples support).

    .venv/bin/python bench/defaults_table.py runs/defaults_evidence/metrics.json \
        --paired scorecam:layer=decoder,weights=centred@scorecam:layer=decoder,baseline=zero
    .venv/bin/python bench/defaults_table.py runs/explainers_evidence/metrics.json --columns deletion_auc_linear \
        deletion_auc_area insertion_auc_linear insertion_auc_area road_gap energy_pointing_game seconds
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import Counter
from pathlib import Path

from xai.evaluation.evaluate import REFERENCES
from xai.evaluation.measures import measures
from xai.evaluation.stats import paired_difference

# metric -> short column title; which way is better comes from the report's own table
TITLES = {
    "deletion_auc_linear": "Del. lin ↓",
    "deletion_auc_area": "Del. area ↓",
    "insertion_auc_linear": "Ins. lin ↑",
    "insertion_auc_area": "Ins. area ↑",
    "road_gap": "ROAD gap ↑",
    "average_drop": "Avg Drop % ↓",
    "average_increase": "Avg Inc. % ↑",
    "energy_pointing_game": "Energy PG ↑",
    "seconds": "s / sample",
}
DEFAULT_COLUMNS = [m for m in TITLES if m != "road_gap"]  # the defaults' runs leave ROAD out (--no_road)
BETTER = {m.name: m.better for m in measures("main")}
COLUMNS = [(metric, TITLES[metric], BETTER[metric]) for metric in DEFAULT_COLUMNS]


PINNED = True  # the run's --methods pinned to encoder.layer4, raw, zero (bench/defaults_evidence.sh)


def short(label: str) -> str:
    """scorecam:layer=encoder.layer4,baseline=zero -> Score-CAM layer4 zero (the runs' own labels are long).
    Unlabelled settings are read as bench/defaults_evidence.sh pins them (encoder.layer4, raw, zero)."""
    method, _, rest = label.partition(":")
    name = {"scorecam": "Score-CAM", "gradcam": "Grad-CAM"}.get(method, method)
    if not PINNED:
        return label  # the run's settings but for what the label says (explainers_evidence.sh, claims_evidence.sh)
    opts = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    layer = opts.pop("layer", "encoder.layer4").replace("encoder.", "")
    parts = [name, layer] if method not in REFERENCES else [label]
    if method == "scorecam":
        weights = opts.pop("weights", "raw")
        parts.append(opts.pop("baseline", "zero") if weights != "centred" else "(any baseline)")
        if weights != "raw":
            parts.append(weights)
    parts += [f"{k}={v}" for k, v in opts.items()]
    return " ".join(parts)


def fmt(value: float | None, metric: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.1f}" if metric in ("average_drop", "average_increase", "seconds") else f"{value:.3f}"


def paired(metrics_csv: Path, a: str, b: str, classes: list[str]) -> None:
    """Print A − B per class and metric (mean [95% interval] over the samples that have both)."""
    values: dict[tuple[str, str, str], dict[str, float]] = {}
    with metrics_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["variant"] in (a, b) and row["value"] not in ("", "nan"):
                values.setdefault((row["variant"], row["class"], row["metric"]), {})[row["sample"]] = float(
                    row["value"]
                )
    print(f"\nPaired difference {short(a)} − {short(b)} (mean [95% bootstrap interval]):\n")
    print("| class | " + " | ".join(t for m, t, _ in COLUMNS if m != "seconds") + " |")
    print("|---|" + "---|" * sum(m != "seconds" for m, _, _ in COLUMNS))
    for cname in classes:
        cells = []
        for metric in (m for m, _, _ in COLUMNS if m != "seconds"):
            est = paired_difference(values.get((a, cname, metric), {}), values.get((b, cname, metric), {}))
            digits = 1 if metric.startswith("average") else 3
            cells.append(
                "n/a" if est.n == 0 else f"{est.mean:+.{digits}f} [{est.low:+.{digits}f}, {est.high:+.{digits}f}]"
            )
        print(f"| {cname} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", type=Path)
    p.add_argument("--classes", nargs="+", default=None, help="default: every class in the file")
    p.add_argument("--paired", nargs="*", default=[], metavar="A@B", help="variant pairs to difference")
    p.add_argument(
        "--pinned",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="plain method labels ran at defaults_evidence.sh's pinned settings (default: for a defaults_evidence run)",
    )
    p.add_argument("--columns", nargs="+", default=DEFAULT_COLUMNS, choices=list(TITLES), help="metrics shown")
    args = p.parse_args()
    COLUMNS[:] = [(metric, TITLES[metric], BETTER[metric]) for metric in args.columns]
    global PINNED
    PINNED = "defaults_evidence" in str(args.metrics) if args.pinned is None else args.pinned
    data = json.loads(args.metrics.read_text())
    summary = data["summary"]
    variants = list(data["variants"])
    wins: dict[str, Counter] = {m: Counter() for m, _, _ in COLUMNS}
    for cname in args.classes or data["classes"]:
        per = summary[cname]
        n = max((e.get("n", 0) for v in per.values() for e in v.values()), default=0)
        print(f"\n**{cname}** (n = {n} test images with the class in its region)\n")
        print("| variant | " + " | ".join(t for _, t, _ in COLUMNS) + " |")
        print("|---|" + "---|" * len(COLUMNS))
        best = {}
        for metric, _, better in COLUMNS:
            vals = {v: per.get(v, {}).get(metric, {}).get("mean") for v in variants if v not in REFERENCES}
            vals = {v: x for v, x in vals.items() if x is not None and math.isfinite(x)}
            if vals:
                best[metric] = (min if better == "lower" else max)(vals, key=vals.__getitem__)
                if metric != "seconds":
                    wins[metric][best[metric]] += 1
        for v in variants:
            cells = []
            for metric, _, _ in COLUMNS:
                text = fmt(per.get(v, {}).get(metric, {}).get("mean"), metric)
                cells.append(f"**{text}**" if best.get(metric) == v else text)
            print(f"| {short(v)} | " + " | ".join(cells) + " |")
    print("\nWins per metric (classes on which a variant is best, references excluded):\n")
    for metric, title, _ in (c for c in COLUMNS if c[0] != "seconds"):
        print(f"- {title}: " + ", ".join(f"{short(v)} {k}" for v, k in wins[metric].most_common()))
    for pair in args.paired:
        a, sep, b = pair.partition("@")
        if not sep or a not in variants or b not in variants:
            raise SystemExit(f"error: --paired wants A@B with two of the run's variants: {', '.join(variants)}")
        paired(args.metrics.with_name("metrics.csv"), a, b, args.classes or data["classes"])


if __name__ == "__main__":
    main()
