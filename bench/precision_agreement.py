#!/usr/bin/env python
"""What --eval_precision changes: every metric's per-class mean of one run against the same run at fp32.

Two runs of the same command that differ only in --eval_precision (the maps are the same: the map engines'
own --precision is not changed) are read from their metrics.csv. Per metric, over the (variant, class)
pairs both runs measured, on the samples both have: the largest |mean_B − mean_A|, the half-width of A's
95% bootstrap interval at that pair over all of A's samples (xai.evaluation.stats), and the pairs that
moved by more than that half-width (the rule of issue 28: such a metric runs fp32 whatever
--eval_precision says). Then, per (class, metric), whether the order of the variants by their means
changes, and, where both runs hold the same samples, whether the report's verdict rows differ.

    for p in fp32 bf16; do .venv/bin/python visualize_scorecam.py --model_path best_model_FPN.safetensors \
        --config demo --compare --evaluate --num_samples 8 --eval_steps 20 --stability_samples 0 \
        --sanity_samples 0 --eval_precision $p --output_dir runs/precision_$p; done
    .venv/bin/python bench/precision_agreement.py runs/precision_fp32 runs/precision_bf16
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xai.evaluation.measures import measures
from xai.evaluation.stats import bootstrap_mean

Key = tuple[str, str, str]  # (variant, class, metric)


def read(run: Path) -> dict[Key, dict[str, float]]:
    """{(variant, class, metric): {sample: value}} of a run's metrics.csv (rows without a value left out)."""
    values: dict[Key, dict[str, float]] = defaultdict(dict)
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["value"] not in ("", None):
                values[(row["variant"], row["class"], row["metric"])][row["sample"]] = float(row["value"])
    return values


def verdict_rows(run: Path) -> list[str]:
    """The table rows of the report's "Verdicts" section (report.md)."""
    text = (run / "report.md").read_text(encoding="utf-8")
    section = text.split("## Verdicts", 1)[-1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]


def agreement(a: dict[Key, dict[str, float]], b: dict[Key, dict[str, float]]) -> dict[str, dict[str, object]]:
    """Per metric: the largest |Δ| of a per-class mean, where it is, A's half-width there, and the pairs
    that moved by more than their own half-width."""
    out: dict[str, dict[str, object]] = {}
    for key in sorted(set(a) & set(b)):
        samples = sorted(set(a[key]) & set(b[key]))
        if not samples:
            continue
        ea = bootstrap_mean([a[key][s] for s in samples])
        eb = bootstrap_mean([b[key][s] for s in samples])
        delta = abs(eb.mean - ea.mean)
        spread = bootstrap_mean(list(a[key].values()))  # the interval of every sample A has
        half = (spread.high - spread.low) / 2 if spread.n > 1 else math.nan
        entry = out.setdefault(key[2], {"max": -1.0, "at": "", "half": math.nan, "moved": [], "n": ea.n})
        if delta > entry["max"]:  # type: ignore[operator]
            entry.update(max=delta, at=f"{key[0]} / {key[1]}", half=half)
        if half == half and delta > half:
            entry["moved"].append(f"{key[0]} / {key[1]}")  # type: ignore[union-attr]
    return out


def _shared_mean(values: dict[Key, dict[str, float]], other: dict[Key, dict[str, float]], key: Key) -> float:
    """The mean of values[key] over the samples that `other` has too."""
    samples = set(values[key]) & set(other[key])
    return sum(values[key][s] for s in samples) / max(1, len(samples))


def order_changes(a: dict[Key, dict[str, float]], b: dict[Key, dict[str, float]]) -> list[str]:
    """(class, metric) whose variants, ordered by their means, come in another order under B."""
    better = {m.name: m.better for m in measures("main")}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for variant, cls, metric in set(a) & set(b):
        if better.get(metric) in ("lower", "higher"):
            groups[(cls, metric)].append(variant)
    changed = []
    for (cls, metric), variants in sorted(groups.items()):
        rank_a = sorted(variants, key=lambda v: _shared_mean(a, b, (v, cls, metric)))
        rank_b = sorted(variants, key=lambda v: _shared_mean(b, a, (v, cls, metric)))
        if rank_a != rank_b:
            changed.append(f"{cls} / {metric}: {' < '.join(rank_a)} (A) against {' < '.join(rank_b)} (B)")
    return changed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fp32_run", type=Path, help="the run at --eval_precision fp32 (A)")
    p.add_argument("other_run", type=Path, help="the same run at another --eval_precision (B)")
    args = p.parse_args()
    a, b = read(args.fp32_run), read(args.other_run)
    print("| metric | n | max abs(Δ) of a per-class mean | at (variant / class) | A's half-width there | moved more |")
    print("|---|---|---|---|---|---|")
    for metric, e in sorted(agreement(a, b).items()):
        moved = ", ".join(e["moved"]) or "none"  # type: ignore[arg-type]
        print(f"| {metric} | {e['n']} | {e['max']:.2e} | {e['at']} | {e['half']:.3g} | {moved} |")
    changed = order_changes(a, b)
    print(f"\norder of the variants changed on {len(changed)} (class, metric):")
    for line in changed:
        print(f"- {line}")
    samples_a = {s for v in a.values() for s in v}
    samples_b = {s for v in b.values() for s in v}
    if samples_a != samples_b:
        held = f"{len(samples_a)} and {len(samples_b)} samples"
        print(f"\nverdicts not compared: the runs hold {held}, not the same ones")
        return
    va, vb = verdict_rows(args.fp32_run), verdict_rows(args.other_run)
    differing = [(x, y) for x, y in zip(va, vb, strict=False) if x != y] + [("", y) for y in vb[len(va) :]]
    print(f"\nverdict rows that differ: {len(differing)} of {len(va)}")
    for x, y in differing:
        print(f"- A: {x}\n  B: {y}")


if __name__ == "__main__":
    main()
