#!/usr/bin/env python
"""The evaluation's cost per sample on the demo model: forward passes by metric and seconds, for one or
more checkouts of this project in one run (before/after a change, on the same machine and load).

    .venv/bin/python bench/bench_evaluation.py --methods gradcam,scorecam,eigencam --num_samples 2
    git worktree add /tmp/before <commit>
    .venv/bin/python bench/bench_evaluation.py --code /tmp/before --code . --rounds 2

Each round runs `visualize_scorecam.py --compare --evaluate` of every checkout (alternating, so that a
change in the machine's load falls on both) with the stability and sanity checks off, and reads the
forwards and seconds per sample from the run's metrics.json ("cost": the evaluator's own count and wall
time). Prints one row per checkout: forwards per sample by metric, their total, and the seconds per
sample of each round. Needs the demo (`make demo`, or data/demo and best_model_FPN.safetensors).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def one_run(code: Path, out: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        str(code / "visualize_scorecam.py"),
        "--model_path",
        str(ROOT / args.model_path),
        "--config",
        "demo",
        "--data_root",
        str(ROOT / "data" / "demo"),
        "--compare",
        "--methods",
        args.methods,
        "--evaluate",
        "--num_samples",
        str(args.num_samples),
        "--eval_steps",
        str(args.eval_steps),
        "--stability_samples",
        "0",
        "--sanity_samples",
        "0",
        "--no_progress",
        "--output_dir",
        str(out),
        *(["--no_road"] if args.no_road else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=code)
    return json.loads((out / "metrics.json").read_text())["cost"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--code", action="append", type=Path, help="a checkout to measure (repeat; default: this one)")
    p.add_argument("--model_path", default="best_model_FPN.safetensors")
    p.add_argument("--methods", default="gradcam,scorecam")
    p.add_argument("--num_samples", type=int, default=2)
    p.add_argument("--eval_steps", type=int, default=50)
    p.add_argument("--no_road", action="store_true")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    codes = [c.resolve() for c in (args.code or [ROOT])]
    print(f"{cpu_name()}, {os.cpu_count()} cores; methods {args.methods} and the references, {args.num_samples} "
          f"sample(s), S = {args.eval_steps}{', no ROAD' if args.no_road else ''}")  # fmt: skip
    costs: dict[Path, list[dict]] = {c: [] for c in codes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for k, code in enumerate(codes):
                costs[code].append(one_run(code, Path(tmp) / f"r{r}_c{k}", args))
    for code, runs in costs.items():
        forwards = runs[0]["forwards_per_sample"]
        seconds = ", ".join(f"{run['seconds_per_sample']:.1f}" for run in runs)
        by_metric = ", ".join(f"{m} {v:.0f}" for m, v in forwards.items())
        print(f"{code}: {sum(forwards.values()):.0f} forwards per sample ({by_metric}); seconds per sample {seconds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
