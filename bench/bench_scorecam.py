#!/usr/bin/env python
"""Score-CAM speed: the engine against a one-sweep-per-class baseline and against its floor.

All on the same model, target layer, image and channel count, in one run; each measurement in its own
subprocess so that its peak memory (max RSS on CPU, max allocated on CUDA) is its own.

    baseline        the formula with one sweep of masked forwards per class, batched, fp32, all K masks
                    upsampled up front (as the old scripts and pytorch-grad-cam's ScoreCAM do), in a
                    process as those scripts run it
    baseline-tuned  the same, with the CPU allocator tuned as the CLIs tune it (xai.runtime): like for like
    engine          xai.ScoreCAM: one sweep for every class, at fp32 and at the precision `auto` picks
    floor           the engine's masked forwards alone (same count, batch size, precision, memory format)

engine, floor and baseline-tuned run with xai.runtime.tune_cpu_allocator() (as the CLIs do) unless
--no_tune; the speed-up is printed against both baselines.

    python bench/bench_scorecam.py                       # se_resnext50_32x4d FPN, 256x256, 64 maps
    python bench/bench_scorecam.py --encoder resnet18 --size 256 256 --maps 128
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
    """One sweep per class (K forwards each), fp32: w_kc = s_c(f(x ⊙ H_k)) − s_c(f(0))."""
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
            base = (base_p[c] * region).sum()
            w = torch.zeros(acts.shape[0])
            for s in range(0, len(keep), batch_size):
                m = masks[s:s + batch_size].unsqueeze(1)
                p = torch.softmax(model(x * m), 1)[:, c]
                w[keep[s:s + batch_size]] = (p * region).flatten(1).sum(1) - base
            cam = torch.relu(F.interpolate((w.view(-1, 1, 1) * acts).sum(0)[None, None], size=(H, W),
                                           mode="bilinear", align_corners=False))[0, 0]
            span = cam.max() - cam.min()
            maps.append((cam - cam.min()) / span if span > 0 else torch.zeros_like(cam))
    return torch.stack(maps)


def floor_forwards(model, x, n_forwards, batch_size, precision):
    """The masked forwards alone: n_forwards images in batches, prebuilt inputs, no scoring."""
    import torch

    from xai.precision import autocast, wants_channels_last

    device = x.device
    cl = wants_channels_last(precision, device)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(2)
    batches = []
    for s in range(0, n_forwards, batch_size):
        b = min(batch_size, n_forwards - s)
        xb = x * torch.rand(b, 1, *x.shape[-2:], generator=g)
        batches.append(xb.contiguous(memory_format=torch.channels_last) if cl else xb)
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(precision, device):
        for xb in batches:
            model(xb)
    return time.perf_counter() - t0


def peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args) -> dict:
    """Run one measurement (in this process) and return its figures."""
    import torch

    from xai import ScoreCAM

    torch.set_num_threads(args.threads)
    if args.what != "baseline" and not args.no_tune:
        from xai.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    device = torch.device(args.device)
    model, x = build(args)
    model, x = model.to(device), x.to(device)
    result = {"what": args.what}
    if args.what.startswith("baseline"):
        t0 = time.perf_counter()
        maps = baseline_scorecam(model, x, args.layer, args.classes, args.batch_size, args.maps)
        result["seconds"] = time.perf_counter() - t0
        torch.save(maps.cpu(), args.maps_out)
    elif args.what.startswith("engine"):
        precision = args.what.split("-", 1)[1]
        cam = ScoreCAM(model, target_layer=args.layer, batch_size=args.batch_size, max_activation_maps=args.maps,
                       precision=precision)
        t0 = time.perf_counter()
        maps = cam(x)
        result["seconds"] = time.perf_counter() - t0
        result["precision"] = cam.precision
        result["forwards"] = cam.last.stats["forwards"]
        torch.save(maps[0].cpu(), args.maps_out)
    else:  # floor-<precision>
        from xai.precision import resolve_precision

        precision = resolve_precision(args.what.split("-", 1)[1], device)
        result["seconds"] = floor_forwards(model, x, args.forwards, args.batch_size, precision)
        result["precision"] = precision
    result["peak_mb"] = peak_memory_mb(device)
    return result


def run_child(args, what: str, workdir: Path, forwards: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--encoder", args.encoder, "--size", *map(str, args.size),
           "--maps", str(args.maps), "--classes", str(args.classes), "--batch_size", str(args.batch_size),
           "--layer", args.layer, "--device", args.device, "--threads", str(args.threads),
           "--forwards", str(forwards), "--maps_out", str(workdir / f"{what}.pt")] + (["--no_tune"] if args.no_tune else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="se_resnext50_32x4d")
    p.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("W", "H"))
    p.add_argument("--maps", type=int, default=64, help="activation maps kept (highest variance)")
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--layer", default="encoder.layer4")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=1, help="rounds; each figure is the median over rounds")
    p.add_argument("--no_tune", action="store_true", help="leave the CPU allocator as it is everywhere")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--forwards", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--maps_out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.what = args.child
        print(json.dumps(measure(args)))
        return

    import statistics
    import tempfile

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench_scorecam_"))
    rounds: dict[str, list[dict]] = {}
    for r in range(args.repeats):
        for what in ("baseline",) + (() if args.no_tune else ("baseline-tuned",)) + ("engine-fp32", "engine-auto"):
            rounds.setdefault(what, []).append(run_child(args, what, work))
        n = rounds["engine-fp32"][-1]["forwards"]
        for what in ("floor-fp32", "floor-auto"):
            rounds.setdefault(what, []).append(run_child(args, what, work, forwards=n))
    med = {k: statistics.median(v["seconds"] for v in vs) for k, vs in rounds.items()}
    peak = {k: max(v["peak_mb"] for v in vs) for k, vs in rounds.items()}
    auto = rounds["engine-auto"][0]["precision"]
    ref = torch.load(work / "baseline.pt")
    diff = {k: float((torch.load(work / f"{k}.pt") - ref).abs().max()) for k in ("engine-fp32", "engine-auto")}
    tuned = "no" if args.no_tune else "yes (engine, floor, baseline-tuned)"
    unit = "MiB max allocated" if args.device.startswith("cuda") else "MiB max RSS"
    print(f"model FPN/{args.encoder}, layer {args.layer}, image {args.size[0]}x{args.size[1]}, "
          f"{args.classes} classes, {args.maps} maps, batch {args.batch_size}, device {args.device}, "
          f"threads {args.threads}, auto = {auto}, {rounds['engine-fp32'][0]['forwards']} masked forwards per sweep, "
          f"allocator tuned: {tuned}, median of {args.repeats}")
    print(f"{'measurement':<16}{'seconds':>9}{'peak ' + unit:>22}")
    for k in med:
        print(f"{k:<16}{med[k]:>9.2f}{peak[k]:>22.0f}")
    for base in ("baseline", "baseline-tuned"):
        if base in med:
            print(f"speed-up over {base}: fp32 {med[base] / med['engine-fp32']:.2f}x, "
                  f"auto ({auto}) {med[base] / med['engine-auto']:.2f}x")
    print(f"engine / floor: fp32 {med['engine-fp32'] / med['floor-fp32']:.3f}, "
          f"auto ({auto}) {med['engine-auto'] / med['floor-auto']:.3f}")
    print(f"max |engine - baseline| on the normalised maps: fp32 {diff['engine-fp32']:.2e}, auto {diff['engine-auto']:.2e}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
