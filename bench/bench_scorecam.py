#!/usr/bin/env python
"""Score-CAM speed: the engine against its floor (the bare masked forwards at the faster memory layout),
and optionally against one-sweep-per-class baselines, all in one run.

Each measurement runs in its own subprocess (its peak memory is its own); all use the same model,
target layer, image and channel count:

    floor-contiguous     the engine's masked forwards alone (same count and batch), default layout
    floor-channels_last  the same in channels_last
    engine-first         xai.ScoreCAM's first call: includes the one-time layout measurement
    engine              a second call in the same process (layout cached): what every later sample costs
    engine-compile       (--compile) the engine with torch.compile: its first call compiles, the second is
                         what every later sample costs
    baseline[-tuned]     (--baselines) the formula with one sweep per class, as the old scripts ran it,
                         without [with] the CLIs' allocator setting

engine, floors and baseline-tuned run with xai.runtime.tune_cpu_allocator() (as the CLIs do).

    .venv/bin/python bench/bench_scorecam.py                      # se_resnext50_32x4d FPN, 256x128, 128 maps
    .venv/bin/python bench/bench_scorecam.py --baselines --maps 64 --size 256 256
    .venv/bin/python bench/bench_scorecam.py --compile --batch_size auto   # torch.compile; the automatic batch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build(args):
    import torch

    from xai.modeling import build_model

    torch.manual_seed(0)
    model = build_model("FPN", args.encoder, args.classes).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, args.size[1], args.size[0], generator=g)
    return model, x


def baseline_scorecam(model, x, layer_name, classes, batch_size, max_maps):
    """One sweep per class (K forwards each), fp32: w_kc = s_c(f(x ⊙ H_k)) − s_c(f(0)); L = Up(ReLU(Σ w A))."""
    import torch
    import torch.nn.functional as F

    layer = dict(model.named_modules())[layer_name]
    store = {}
    h = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    with torch.no_grad():
        out = model(x)
    h.remove()
    acts = store["a"][0]
    var = acts.flatten(1).var(1, unbiased=False)
    keep = var.argsort(descending=True)[:max_maps] if max_maps else torch.arange(acts.shape[0])
    keep = keep[var[keep] > 0]
    H, W = x.shape[-2:]
    ups = F.interpolate(acts[keep].unsqueeze(0), size=(H, W), mode="bilinear", align_corners=False)[0]
    lo = ups.flatten(1).amin(1).view(-1, 1, 1)
    hi = ups.flatten(1).amax(1).view(-1, 1, 1)
    masks = (ups - lo) / (hi - lo)
    pred = out.argmax(1)[0]
    maps = []
    with torch.no_grad():
        base_p = torch.softmax(model(torch.zeros_like(x)), 1)[0]
        for c in range(classes):
            region = (pred == c).float()
            w = torch.zeros(acts.shape[0], device=x.device)
            for s in range(0, len(keep), batch_size):
                m = masks[s : s + batch_size].unsqueeze(1)
                p = torch.softmax(model(x * m), 1)[:, c]
                w[keep[s : s + batch_size]] = ((p - base_p[c]) * region).flatten(1).sum(1)
            cam = F.interpolate(
                torch.relu((w.view(-1, 1, 1) * acts).sum(0))[None, None],
                size=(H, W),
                mode="bilinear",
                align_corners=False,
            )[0, 0]
            span = cam.max() - cam.min()
            maps.append((cam - cam.min()) / span if span > 0 else torch.zeros_like(cam))
    return torch.stack(maps)


def floor_forwards(model, x, n_forwards, batch_size, channels_last):
    """The masked forwards alone: n_forwards images in batches, prebuilt inputs, no scoring."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    g = torch.Generator(device=x.device).manual_seed(2)
    batches = [
        (x * torch.rand(min(batch_size, n_forwards - s), 1, *x.shape[-2:], generator=g, device=x.device)).contiguous(
            memory_format=fmt
        )
        for s in range(0, n_forwards, batch_size)
    ]
    with torch.inference_mode():
        model(batches[0])  # kernels built and memory allocated for this batch shape, as in the engine's 2nd call
        if len(batches[-1]) != len(batches[0]):
            model(batches[-1])
        synchronize(x.device)
        t0 = time.perf_counter()
        for xb in batches:
            model(xb)
        synchronize(x.device)
    return time.perf_counter() - t0


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously: a timer alone measures the launches)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args) -> dict:
    """Run one measurement (in this process) and return its figures; everything in IEEE fp32 (TF32 off:
    on NVIDIA GPUs cuDNN's convolutions would otherwise run TF32 by default, the engine's fp32 does not)."""
    from xai.precision import float32_math

    with float32_math(tf32=False):
        return _measure(args)


def _measure(args) -> dict:
    import torch

    from xai import ScoreCAM

    torch.set_num_threads(args.threads)
    if args.what != "baseline":
        from xai.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    device = torch.device(args.device)
    model, x = build(args)
    model, x = model.to(device), x.to(device)
    result = {"what": args.what}
    if args.what.startswith("baseline"):
        synchronize(device)
        t0 = time.perf_counter()
        maps = baseline_scorecam(model, x, args.layer, args.classes, args.batch_size, args.maps)
        synchronize(device)
        result["seconds"] = time.perf_counter() - t0
        torch.save(maps.cpu(), args.maps_out)
    elif args.what.startswith("engine"):
        cam = ScoreCAM(  # the paper's weights: what the one-sweep-per-class baseline computes
            model,
            target_layer=args.layer,
            batch_size=args.batch_size,
            max_activation_maps=args.maps,
            precision="fp32",
            weights="raw",
            baseline="zero",
            compile=args.what == "engine-compile",
        )
        synchronize(device)
        t0 = time.perf_counter()
        maps = cam(x)
        synchronize(device)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        maps = cam(x)
        synchronize(device)
        result.update(
            seconds=time.perf_counter() - t0,
            first_seconds=first,
            forwards=cam.last.stats["forwards"],
            channels_last=cam.last.stats["channels_last"],
            batch_size=cam.batches.size,
        )
        torch.save(maps[0].cpu(), args.maps_out)
    else:
        result["seconds"] = floor_forwards(model, x, args.forwards, args.batch_size, args.what.endswith("last"))
    result["peak_mb"] = peak_memory_mb(device)
    return result


def run_child(args, what: str, workdir: Path, forwards: int = 0) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        what,
        "--encoder",
        args.encoder,
        "--size",
        *map(str, args.size),
        "--maps",
        str(args.maps),
        "--classes",
        str(args.classes),
        "--batch_size",
        str(args.batch_size or "auto"),
        "--layer",
        args.layer,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--forwards",
        str(forwards),
        "--maps_out",
        str(workdir / f"{what}.pt"),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="se_resnext50_32x4d")
    p.add_argument("--size", type=int, nargs=2, default=[256, 128], metavar=("W", "H"))
    p.add_argument("--maps", type=int, default=128, help="activation maps kept (highest variance)")
    p.add_argument("--classes", type=int, default=5)
    p.add_argument(
        "--batch_size", type=lambda t: None if t == "auto" else int(t), default=32, help="an integer or auto"
    )
    p.add_argument("--layer", default="encoder.layer4")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--baselines", action="store_true", help="also time one sweep per class (slow)")
    p.add_argument("--compile", action="store_true", help="also time the engine with torch.compile")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each figure is the fastest round")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--forwards", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--maps_out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.what = args.child
        print(json.dumps(measure(args)))
        return

    import tempfile

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench_scorecam_"))
    rounds: dict[str, list[dict]] = {}
    n = 0
    for _ in range(args.repeats):  # interleaved, so that every measurement sees the same machine load
        rounds.setdefault("engine", []).append(run_child(args, "engine", work))
        n = rounds["engine"][-1]["forwards"]
        floor_args = argparse.Namespace(**{**vars(args), "batch_size": rounds["engine"][-1]["batch_size"]})
        for what in ("floor-contiguous", "floor-channels_last"):
            rounds.setdefault(what, []).append(run_child(floor_args, what, work, forwards=n))
        if args.compile:
            rounds.setdefault("engine-compile", []).append(run_child(args, "engine-compile", work))
    if args.baselines:
        for what in ("baseline", "baseline-tuned"):
            rounds[what] = [run_child(args, what, work)]
    results = {k: min(v, key=lambda r: r["seconds"]) for k, v in rounds.items()}
    for name in ("engine", "engine-compile"):
        if name in results:
            results[name]["first_seconds"] = min(r["first_seconds"] for r in rounds[name])
    unit = "MiB max allocated" if args.device.startswith("cuda") else "MiB max RSS"
    print(
        f"model FPN/{args.encoder}, layer {args.layer}, image {args.size[0]}x{args.size[1]}, {args.classes} "
        f"classes, {args.maps} maps ({n} masked forwards), batch {args.batch_size or 'auto'} (ran "
        f"{results['engine']['batch_size']}), device {args.device}, "
        f"threads {args.threads}, fp32, fastest of {args.repeats} interleaved rounds"
    )
    print(f"{'measurement':<22}{'seconds':>9}{'peak ' + unit:>22}")
    print(f"{'engine (first call)':<22}{results['engine']['first_seconds']:>9.2f}{'':>22}")
    for k, r in results.items():
        print(f"{k:<22}{r['seconds']:>9.2f}{r['peak_mb']:>22.0f}")
    best = min(("floor-contiguous", "floor-channels_last"), key=lambda k: results[k]["seconds"])
    layout = "channels_last" if results["engine"]["channels_last"] else "contiguous"
    print(
        f"engine chose {layout}; the faster floor is {best.split('-')[1]} "
        f"({results['floor-contiguous']['seconds'] / results['floor-channels_last']['seconds']:.2f}x "
        "contiguous/channels_last)"
    )
    floor = results[best]["seconds"]
    print(
        f"engine / best floor: {results['engine']['seconds'] / floor:.3f} "
        f"(first call, with the layout measurement: {results['engine']['first_seconds'] / floor:.3f})"
    )
    if args.compile:
        compiled = results["engine-compile"]
        diff = float((torch.load(work / "engine-compile.pt") - torch.load(work / "engine.pt")).abs().max())
        print(
            f"engine-compile: first call (compiles) {compiled['first_seconds']:.2f} s, later calls "
            f"{compiled['seconds']:.2f} s = {results['engine']['seconds'] / compiled['seconds']:.2f}x faster than the "
            f"engine; max |compiled - engine| on the normalised maps: {diff:.2e}"
        )
    if args.baselines:
        ref = torch.load(work / "baseline.pt")
        diff = float((torch.load(work / "engine.pt") - ref).abs().max())
        for base in ("baseline", "baseline-tuned"):
            print(f"speed-up over {base}: {results[base]['seconds'] / results['engine']['seconds']:.2f}x")
        print(f"max |engine - baseline| on the normalised maps: {diff:.2e}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
