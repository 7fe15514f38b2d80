"""Figure speed: the hand-laid-out xai/render.py of commit 7e5257a (1,108 lines: measured fonts, a
panel solver, drawing under one lock) against the current one, then the current one's throughput in
worker processes.

Inputs: one synthetic 300x600 seedling photograph (xai.synth) with 5 classes, a prediction that
misses the root tip and is shifted by 3 px, gaussian maps. Kinds: error figure (one class), heatmap
figure (one class), comparison figure (5 classes x 2 methods); seconds per figure: median and minimum
of --reps runs after one warm-up, before and after interleaved, in this process. Throughput: --figures
single figures (error and heatmap alternating) through a ProcessPoolExecutor (forkserver, else spawn)
of 1 and of 2 workers, started and warmed (one figure per worker) before the clock starts; also the
CPU seconds a worker spends per figure, so that a busy machine (figures/s below workers / CPU s per
figure) shows as such.

    .venv/bin/python bench/bench_render.py
    .venv/bin/python bench/bench_render.py --before /tmp/render_old.py --reps 9 --figures 80  # file or revision
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xai import render  # noqa: E402
from xai.config import DEFAULT_CLASSES, DEFAULT_PALETTE  # noqa: E402
from xai.synth import render_seedling  # noqa: E402

CLASSES = list(DEFAULT_CLASSES)
COLORS = [DEFAULT_PALETTE[c] for c in CLASSES]


def inputs(seed: int = 3) -> dict[str, Any]:
    rgb, gt = render_seedling(np.random.default_rng(seed), (300, 600))
    pred = gt.copy()
    tip = pred[380:]
    tip[tip == 1] = 0  # a missed root tip
    pred = np.roll(pred, 3, axis=1)
    h, w = gt.shape
    yy, xx = np.mgrid[0:h, 0:w]
    cam = np.exp(-(((xx - w / 2) / 50.0) ** 2 + ((yy - 0.4 * h) / 120.0) ** 2)).astype(np.float32)
    maps = {
        "Grad-CAM": np.stack([np.roll(cam, 20 * i, axis=0) for i in range(len(CLASSES))]),
        "Score-CAM": np.stack([np.roll(cam, -20 * i, axis=0) for i in range(len(CLASSES))]),
    }
    return {"rgb": rgb, "gt": gt, "pred": pred, "cam": cam, "maps": maps}


def jobs(mod: ModuleType, x: dict[str, Any]) -> dict[str, Callable[[Path], Any]]:
    """One figure of each kind, drawn by the render module `mod`."""
    return {
        "error": lambda p: mod.save_error_figure(
            p, x["rgb"], x["gt"], x["pred"], 1, CLASSES, COLORS, title="sample0: root"
        ),
        "heatmap": lambda p: mod.save_heatmap_figure(
            p,
            x["rgb"],
            x["cam"],
            "root",
            "Score-CAM",
            region_contour=x["pred"] == 1,
            title="sample0: Score-CAM of root",
        ),
        "comparison": lambda p: mod.save_comparison_figure(
            p, x["rgb"], x["gt"], x["pred"], x["maps"], CLASSES, COLORS, title="sample0: Grad-CAM vs Score-CAM"
        ),
    }


def load_before(path: str) -> ModuleType:
    """The render module to compare with (a file, or a git revision's xai/render.py), as xai._render_before."""
    with tempfile.TemporaryDirectory() as tmp:
        if not Path(path).is_file():
            revision, path = path, str(Path(tmp) / "render_before.py")
            Path(path).write_text(
                subprocess.run(
                    ["git", "show", f"{revision}:xai/render.py"], cwd=ROOT, check=True, capture_output=True, text=True
                ).stdout
            )
        spec = importlib.util.spec_from_file_location("xai._render_before", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)  # relative imports resolve in the xai package
    return mod


def seconds_per_figure(draws: list[Callable[[Path], Any]], out: Path, reps: int) -> list[list[float]]:
    """Seconds of each draw per run, the draws interleaved so that both see the same machine load."""
    for draw in draws:
        draw(out)
    times: list[list[float]] = [[] for _ in draws]
    for _ in range(reps):
        for draw, t in zip(draws, times, strict=True):
            t0 = time.perf_counter()
            draw(out)
            t.append(time.perf_counter() - t0)
    return times


def _one_thread() -> None:
    """As the pipeline's figure workers (xai.pipeline.writer): one OpenCV thread per worker process."""
    import cv2

    cv2.setNumThreads(1)


def _draw_single(i: int, x: dict[str, Any], folder: str) -> float:
    """One figure in a worker; returns the CPU seconds it took."""
    t0 = time.process_time()
    path = Path(folder) / f"fig{i}.png"
    if i % 2:
        render.save_heatmap_figure(path, x["rgb"], x["cam"], "root", "Score-CAM", region_contour=x["pred"] == 1)
    else:
        render.save_error_figure(path, x["rgb"], x["gt"], x["pred"], 1, CLASSES, COLORS)
    return time.process_time() - t0


def throughput(workers: int, n: int, x: dict[str, Any], folder: Path) -> tuple[float, float]:
    """(single figures per second, CPU seconds per figure) of a warm pool of `workers` processes."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    single = {k: x[k] for k in ("rgb", "gt", "pred", "cam")}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_one_thread) as pool:
        list(pool.map(_draw_single, range(workers), [single] * workers, [str(folder)] * workers))  # warm-up
        t0 = time.perf_counter()
        cpu = list(pool.map(_draw_single, range(n), [single] * n, [str(folder)] * n))
        return n / (time.perf_counter() - t0), sum(cpu) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="7e5257a", help="render module to compare with: a file or a git revision")
    ap.add_argument("--reps", type=int, default=7, help="timed runs per figure kind")
    ap.add_argument("--figures", type=int, default=40, help="single figures per throughput run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    x = inputs()
    before = load_before(args.before)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"seconds per figure, median (min) of {args.reps}; 300x600 photograph, dpi {render.DEFAULT_DPI}")
        print(f"{'figure':<12}{'before':>16}{'after':>16}{'after/before':>14}")
        for kind, draw in jobs(render, x).items():
            old, new = (
                np.array(t) for t in seconds_per_figure([jobs(before, x)[kind], draw], folder / "f.png", args.reps)
            )
            cells = "".join(f"{np.median(t):>9.3f} ({t.min():.3f})" for t in (old, new))
            print(f"{kind:<12}{cells}{np.median(new) / np.median(old):>14.2f}")
        print(f"\nthroughput: {args.figures} single figures (error/heatmap alternating), warm process pool")
        print(f"{'workers':<12}{'figures/s':>10}{'CPU s/figure':>14}")
        for w in args.workers:
            fps, cpu = throughput(w, args.figures, x, folder)
            print(f"{w:<12}{fps:>10.1f}{cpu:>14.3f}")


if __name__ == "__main__":
    main()
