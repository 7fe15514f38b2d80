#!/usr/bin/env python
"""The table of the researchers' claims in docs/evidence.md, from a run's metrics.json
(bench/claims_evidence.sh writes one).

One row per claim and measure of the report's section "The manual's claims, measured", one column per
class: the paired difference Score-CAM − Grad-CAM per sample (mean [95% bootstrap interval], n) and
the report's verdict on it (xai.evaluation.report: holds, the opposite, not shown, too few samples).

    .venv/bin/python bench/claims_table.py runs/claims_evidence/metrics.json --classes hypocotyl cotyledon root seed
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from xai.evaluation.measures import measures
from xai.evaluation.report import SEED_CLAIMS, _values, _verdict
from xai.evaluation.stats import paired_difference

SHORT = {  # the verdicts, in a table cell
    "holds": "**holds**",
    "does not hold: the opposite": "opposite",
    "not shown (the interval spans 0)": "not shown",
    "not measurable here": "n/a",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", type=Path)
    p.add_argument("--classes", nargs="+", default=None, help="default: every class in the file")
    p.add_argument("--a", default="scorecam", help="the variant the claims are made for (default: scorecam)")
    p.add_argument("--b", default="gradcam", help="the variant it is compared with (default: gradcam)")
    args = p.parse_args()
    data = json.loads(args.metrics.read_text())
    values = _values(data["rows"])
    classes = args.classes or data["classes"]
    by_name = {m.name: m for m in measures(None)}
    print(f"| the manual's row: claim | measure ({args.a} − {args.b}) | " + " | ".join(classes) + " |")
    print("|---|---|" + "---|" * len(classes))
    context = [("Context (not a claim of the manual)", "", n, None) for n in ("energy_outside", "context_deletion_auc")]
    for row, claim, name, predicted in [*SEED_CLAIMS, *context]:
        m = by_name[name]
        cells = []
        for c in classes:
            diff = paired_difference(values.get((c, args.a, name), {}), values.get((c, args.b, name), {}))
            if not diff.n:
                cells.append("n/a")
                continue
            digits = 1 if name == "seconds" else 3
            if math.isnan(diff.low):
                text = f"{diff.mean:+.{digits}f} (n={diff.n})"
            else:
                text = f"{diff.mean:+.{digits}f} [{diff.low:+.{digits}f}, {diff.high:+.{digits}f}] (n={diff.n})"
            if predicted is None:
                cells.append(text)
                continue
            verdict = _verdict(diff, m.better, predicted)
            cells.append(f"{text}: {'too few' if verdict.startswith('too few') else SHORT.get(verdict, verdict)}")
        arrow = {"higher": " ↑", "lower": " ↓"}.get(m.better or "", "")
        print(f"| {row}{': ' + claim if claim else ''} | {m.title}{arrow} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
