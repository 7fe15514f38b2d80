#!/usr/bin/env python
"""The pipeline's own cost per sample, with a model that costs almost nothing (docs/benchmarks.md).

A seeded tiny FPN (resnet18 encoder, 32 decoder channels) at 128x256 explains synthetic 300x600
photographs (the train split) with Grad-CAM, 5 classes, through the CLIs' pipeline (xai.pipeline: loader, explain stage,
figure workers, records), once per `--workers` value, all in one run. Per sample:

    wall            the explain stage's elapsed time / samples
    methods         the methods' own time (forward, backward, the maps): what a model costs
    main, other     the main process's time per sample outside the methods: preprocessing on the
                    device, maps to the host, summary rows, figure and maps-file jobs queued
    other, CPU      the same in CPU seconds of the main thread (with --threads 1 the methods run on it
                    too, and are taken out the same way): what it costs without the wait for a core
                    that the figure workers hold on a machine with few cores
    main, drawing   figures drawn by the main process itself (--workers 0)
    main, waiting   the main process blocked on the figure workers (the queue holds 2 x workers samples):
                    in submit while the queue is full, and at the end for the last samples' figures
                    (the pool's shutdown, once per run, counts in neither column)
    loader wait     the main process waiting for the next decoded sample (wall - the time in samples)
    figures/s       figures and maps files the workers wrote per second of wall time

    .venv/bin/python bench/bench_pipeline.py                    # 24 samples, workers 0 1 2
    .venv/bin/python bench/bench_pipeline.py --samples 48 --workers 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tiny_model():
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(0)
    model = smp.FPN(
        "resnet18", encoder_weights=None, classes=5, decoder_pyramid_channels=32, decoder_segmentation_channels=32
    )
    return model.eval()


def one_run(ckpt: Path, data: Path, out: Path, samples: int, workers: int, per_call: int = 1) -> dict[str, float]:
    """One explain stage through the CLIs' own parser and pipeline; its timings per sample."""
    from xai.cli import build_parser, run_options
    from xai.pipeline import explain_stage
    from xai.pipeline.setup import prepare
    from xai.precision import float32_math

    argv = [
        "--model_path", str(ckpt), "--data_root", str(data), "--config", "demo", "--output_dir", str(out),
        "--num_samples", str(samples), "--split", "train", "--methods", "gradcam", "--no_progress",
        "--workers", str(workers), "--samples_per_call", str(per_call),
    ]  # fmt: skip
    opts = run_options(build_parser("gradcam").parse_args(argv), "gradcam", argv)
    setup = prepare(opts)
    spent = {"samples": 0.0, "methods": 0.0, "close": 0.0, "samples_cpu": 0.0, "methods_cpu": 0.0, "submit_wait": 0.0}
    original_one, original_sample, original_writer = (
        explain_stage._Stage.group,
        explain_stage.explain_samples,
        explain_stage.FigureWriter,
    )

    def timed_one(*a):
        t0, c0 = time.perf_counter(), time.thread_time()
        original_one(*a)
        spent["samples"] += time.perf_counter() - t0
        spent["samples_cpu"] += time.thread_time() - c0

    def timed_sample(items, execution):
        c0 = time.thread_time()
        explained = original_sample(items, execution)
        spent["methods"] += sum(sum(ex.seconds.values()) for ex in explained)
        spent["methods_cpu"] += time.thread_time() - c0
        return explained

    class TimedWriter(original_writer):  # type: ignore[misc, valid-type]
        def close(self) -> None:
            spent["submit_wait"] = self.wait_seconds  # so far: blocked in submit, the queue being full
            t0 = time.perf_counter()
            super().close()
            spent["close"] += time.perf_counter() - t0

    explain_stage._Stage.group, explain_stage.explain_samples = timed_one, timed_sample  # type: ignore[method-assign]
    explain_stage.FigureWriter = TimedWriter  # type: ignore[misc]
    try:
        with float32_math(tf32=False):
            t0 = time.perf_counter()
            stats = explain_stage.explain(setup)
            wall = time.perf_counter() - t0
    finally:
        explain_stage._Stage.group, explain_stage.explain_samples = original_one, original_sample  # type: ignore[method-assign]
        explain_stage.FigureWriter = original_writer  # type: ignore[misc]
    n = stats.explained
    if n != samples:
        raise SystemExit(f"only {n} of {samples} samples were explained: {stats.skipped}")
    files = sum(1 for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".npz"))
    drawing_in_main = stats.render_seconds if workers == 0 else 0.0
    waiting = stats.waiting_for_figures_seconds  # in submit (queue full) and in close (the last samples)
    return {
        "wall": wall / n,
        "methods": spent["methods"] / n,
        "main_other": (spent["samples"] - spent["methods"] - drawing_in_main - spent["submit_wait"]) / n,
        # with --workers 0 the main thread draws too, and drawing's CPU time cannot be told apart
        "main_other_cpu": (spent["samples_cpu"] - spent["methods_cpu"]) / n if workers else float("nan"),
        "main_drawing": drawing_in_main / n,
        "main_waiting": waiting / n,
        "loader_wait": (wall - spent["samples"] - spent["close"]) / n,
        "files_per_second": files / wall,
        "render_per_file": stats.render_seconds / max(files, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samples_per_call", type=int, default=1, help="the pipeline's --samples_per_call")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process (default: torch's)")
    args = p.parse_args()
    import logging

    import torch

    from xai.checkpoint import save_checkpoint
    from xai.config import DEFAULT_CLASSES
    from xai.runtime import tune_cpu_allocator
    from xai.synth import make_dataset

    logging.disable(logging.WARNING)
    tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    make_dataset(work / "data", n=max(args.samples * 2, 8), seed=0, size=(300, 600))
    ckpt = work / "tiny.safetensors"
    save_checkpoint(
        ckpt, tiny_model(), arch="FPN", encoder="resnet18", classes=list(DEFAULT_CLASSES), img_size=(128, 256)
    )
    one_run(ckpt, work / "data", work / "warmup", 2, 0)  # imports, kernels, fonts
    print(
        f"tiny FPN/resnet18 at 128x256 (width x height), Grad-CAM, 5 classes, {args.samples} synthetic 300x600 "
        f"photographs, {args.samples_per_call} sample(s) per call, torch threads {torch.get_num_threads()}; "
        "milliseconds per sample"
    )
    keys = ("wall", "methods", "main_other", "main_other_cpu", "main_drawing", "main_waiting", "loader_wait")
    header = (
        "workers",
        "wall",
        "methods",
        "main, other",
        "other, CPU",
        "main, drawing",
        "main, waiting",
        "loader wait",
    )
    print("".join(f"{h:>14}" for h in header) + f"{'files/s':>10}{'s/file':>9}")
    for w in args.workers:
        r = one_run(ckpt, work / "data", work / f"w{w}", args.samples, w, args.samples_per_call)
        cells = [str(w)] + [f"{1000 * r[k]:.1f}" for k in keys]
        print("".join(f"{c:>14}" for c in cells) + f"{r['files_per_second']:>10.1f}{r['render_per_file']:>9.3f}")


if __name__ == "__main__":
    main()
