#!/usr/bin/env python
"""Every GPU figure the docs ask for (docs/benchmarks.md), in one run and one JSON file (for the day a GPU is lent).

    .venv/bin/python bench/gpu_suite.py --device cuda --out gpu_suite.json      # about 5-8 minutes on one GPU
    .venv/bin/python bench/gpu_suite.py --device cpu --quick --out /tmp/s.json  # the same code, small (tests)

It measures, on FPN/se_resnext50_32x4d with seeded random weights (resnet18 and 128x64 with --quick):

    scorecam            seconds per sample of Score-CAM at `decoder` and `encoder.layer4`, for every
                        precision (fp32 = IEEE, tf32, bf16) and batch size (32 and auto: the library's
                        automatic size from the measured memory, xai.memory), with the peak device memory
    error               max |map − CPU IEEE fp32 map| and the minimum Pearson r over classes, per precision
    out_of_memory       (CUDA) a real out-of-memory: the process limited to a small memory fraction, the
                        sweep's batch halved until it fits (the batch reached and the maps' agreement)
    compile             Score-CAM at `decoder`, automatic batch and precision, 4 samples per call: seconds per
                        call uncompiled, with --compile (the first call, which compiles, apart) and with
                        --cudnn_benchmark, and the maps' difference from the uncompiled ones
    evaluation          --evaluate's perturbation metrics of one sample (deletion and insertion, both
                        schedules, ROAD, Average Drop/Increase; 2 maps x 5 classes, S = 50): forwards per
                        second and seconds per sample at each --eval_precision (fp32, tf32, bf16) and at
                        fp32 with --compile, the AUCs' max |difference| from fp32
    pipeline            bench_pipeline.py's per-sample figures with 2 figure workers, 1 and 4 samples per call
    numerics            what ran: device name, TF32 settings, torch and CUDA versions

Nothing is estimated: a figure that could not be measured is null with its reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _model(encoder: str):
    import torch

    from xai.modeling import build_model

    torch.manual_seed(0)
    return build_model("FPN", encoder, 5).eval()


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _maps(model, x, layer: str, precision: str, batch: int | None, maps: int | None, **options: Any):
    """(maps on the CPU, seconds of the second call, the batch size it ran with): the first call pays the
    layout measurement, the automatic batch size's measurement, compilation and the kernels' first runs."""
    from xai import ScoreCAM

    cam = ScoreCAM(
        model, target_layer=layer, precision=precision, batch_size=batch, max_activation_maps=maps, **options
    )
    cam(x)
    _reset_peak(x.device)
    _sync(x.device)
    t0 = time.perf_counter()
    out = cam(x)
    _sync(x.device)
    return out.float().cpu(), time.perf_counter() - t0, cam.batches.size


def _pearson(a, b) -> float | None:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else None


def scorecam(model, x, device, layers: list[str], batches: list[int], maps: int | None) -> dict[str, Any]:
    """Seconds, peak memory and error against CPU IEEE fp32, per layer, precision and batch."""
    from xai.precision import resolve_precision

    reference = {layer: _maps(model.cpu(), x.cpu(), layer, "fp32", batches[0], maps)[0] for layer in layers}
    model.to(device)
    out: dict[str, Any] = {}
    for layer in layers:
        for precision in ("fp32", "tf32", "bf16"):
            ran = resolve_precision(precision, device)
            for batch in [*batches, None]:
                key = f"{layer}/{precision}/batch{batch or 'auto'}"
                try:
                    m, seconds, final = _maps(model, x.to(device), layer, precision, batch, maps)
                except Exception as exc:  # a precision the device cannot run
                    out[key] = {"seconds": None, "reason": str(exc).splitlines()[0][:200]}
                    continue
                rs = [_pearson(m[0, c], reference[layer][0, c]) for c in range(m.shape[1])]
                out[key] = {
                    "ran_as": ran,
                    "seconds": round(seconds, 4),
                    "batch_ran": final,
                    "peak_mb": _peak_mb(device),
                    "max_abs_error_vs_cpu_fp32": float((m - reference[layer]).abs().max()),
                    "min_pearson_vs_cpu_fp32": min((r for r in rs if r is not None), default=None),
                }
    return out


def out_of_memory(model, x, device, layer: str, maps: int | None) -> dict[str, Any]:
    """A real out-of-memory: the process may use only a small fraction of the GPU, the batch halves."""
    import torch

    if device.type != "cuda":
        return {"measured": False, "reason": "needs a CUDA device (a real allocation failure)"}
    full, _, _ = _maps(model, x, layer, "fp32", 8, maps)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    used = torch.cuda.memory_allocated(device)
    torch.cuda.set_per_process_memory_fraction(min(1.0, (used + 2**30) / total), device)  # about 1 GiB more
    try:
        m, seconds, final = _maps(model, x, layer, "fp32", 1024, maps)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    return {"measured": True, "asked_batch": 1024, "batch_after_halving": final, "seconds": round(seconds, 3),
            "max_abs_difference_vs_batch8": float((m - full).abs().max())}  # fmt: skip


def compiled(model, x, device, layer: str, maps: int | None, samples: int) -> dict[str, Any]:
    """Score-CAM at `layer` on `samples` images per call (automatic batch and precision), uncompiled, with
    --compile and with --cudnn_benchmark: seconds per call, the first (compiling) call apart."""
    import torch

    batch = x.to(device).expand(samples, -1, -1, -1).contiguous()
    out: dict[str, Any] = {"samples_per_call": samples, "layer": layer}
    plain = None
    for name, options in (
        ("eager", {}),
        ("compile", {"compile": True}),
        ("cudnn_benchmark", {"cudnn_benchmark": True}),
    ):
        if name == "cudnn_benchmark" and device.type != "cuda":
            out[name] = {"seconds": None, "reason": "cuDNN runs on CUDA devices only"}
            continue
        _sync(device)
        t0 = time.perf_counter()
        try:
            m, seconds, final = _maps(model, batch, layer, "auto", None, maps, **options)
        except Exception as exc:  # torch.compile needs a working compiler toolchain
            out[name] = {"seconds": None, "reason": str(exc).splitlines()[0][:200]}
            continue
        first = time.perf_counter() - t0 - seconds
        entry = {"seconds_per_call": round(seconds, 4), "first_call_seconds": round(first, 2), "batch_ran": final}
        if plain is None:
            plain = m
        else:
            entry["max_abs_difference_vs_eager"] = float((m - plain).abs().max())
        out[name] = entry
    torch._dynamo.reset()
    return out


def evaluation(model, x, device, steps: int) -> dict[str, Any]:
    """The perturbation metrics of one sample (2 seeded smooth maps x 5 classes, regions from the
    prediction) at each --eval_precision and with --compile: forwards per second, seconds per sample and
    the AUCs' max |difference| from fp32's (the first, compiling or layout-measuring call apart)."""
    import torch

    from xai.metrics.faithfulness import Faithfulness
    from xai.metrics.references import random_smooth_maps
    from xai.precision import resolve_precision

    model, x = model.to(device).eval(), x.to(device)
    with torch.inference_mode():
        pred = model(x).argmax(1)[0]
    regions = torch.stack([pred == c for c in range(5)])
    valid = torch.ones(x.shape[-2:], dtype=torch.bool, device=device)
    maps = {f"m{k}": random_smooth_maps((5, *x.shape[-2:]), seed=k).to(device) for k in range(2)}

    def sample(precision: str, compile: bool) -> tuple[float, Faithfulness, list[float]]:
        _sync(device)
        t0 = time.perf_counter()
        f = Faithfulness(model, x, range(5), regions, valid, precision=precision, compile=compile)
        aucs = []
        for kind in ("deletion", "insertion"):
            for schedule in ("linear", "area"):
                aucs += [r.auc for rs in getattr(f, kind)(maps, steps=steps, schedule=schedule).values() for r in rs]
        aucs += [r.gap for rs in f.road(maps).values() for r in rs]
        aucs += [r.drop / 100 for rs in f.average_drop_increase(maps).values() for r in rs]  # as a fraction
        _sync(device)
        return time.perf_counter() - t0, f, aucs

    out: dict[str, Any] = {"steps": steps, "maps": 2, "classes": 5}
    reference: list[float] | None = None
    for name, precision, compile in (
        ("fp32", "fp32", False),
        ("tf32", "tf32", False),
        ("bf16", "bf16", False),
        ("fp32_compile", "fp32", True),
    ):
        ran = resolve_precision(precision, device)
        try:
            sample(ran, compile)  # the first call: compilation, layout and batch-size measuring
            seconds, f, aucs = sample(ran, compile)
        except Exception as exc:  # torch.compile needs a working compiler toolchain
            out[name] = {"seconds_per_sample": None, "reason": str(exc).splitlines()[0][:200]}
            continue
        forwards = sum(f.forwards.values())
        entry = {
            "ran_as": ran,
            "seconds_per_sample": round(seconds, 3),
            "forwards_per_sample": forwards,
            "forwards_per_second": round(forwards / seconds, 1),
            "batch": f.batch_size,
        }
        if reference is None:
            reference = aucs
        else:
            pairs = [(a, b) for a, b in zip(aucs, reference, strict=True) if a == a and b == b]
            entry["max_abs_difference_vs_fp32"] = max((abs(a - b) for a, b in pairs), default=None)
        out[name] = entry
    torch._dynamo.reset()
    return out


def pipeline(samples: int) -> dict[str, Any]:
    """bench_pipeline.py's figures (a tiny model: the pipeline's own cost) with 2 workers, 1 and 4 per call."""
    import tempfile

    from bench_pipeline import one_run, tiny_model

    from xai.checkpoint import save_checkpoint
    from xai.config import DEFAULT_CLASSES
    from xai.synth import make_dataset

    work = Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    make_dataset(work / "data", n=max(2 * samples, 8), seed=0, size=(300, 600))
    ckpt = work / "tiny.safetensors"
    save_checkpoint(ckpt, tiny_model(), arch="FPN", encoder="resnet18", classes=list(DEFAULT_CLASSES),
                    img_size=(128, 256))  # fmt: skip
    one_run(ckpt, work / "data", work / "warmup", 2, 0)
    return {f"per_call_{k}": one_run(ckpt, work / "data", work / f"k{k}", samples, 2, k) for k in (1, 4)}


def numerics(device) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["capability"] = list(torch.cuda.get_device_capability(device))
    from xai.precision import float32_settings

    info["float32_defaults"] = float32_settings()
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--quick", action="store_true", help="resnet18, 128x64, 8 maps, 4 pipeline samples (tests)")
    args = p.parse_args(argv)
    import logging

    import torch

    from xai.modeling import pick_device
    from xai.runtime import tune_cpu_allocator

    logging.disable(logging.WARNING)
    tune_cpu_allocator()
    device = pick_device(args.device)
    encoder, (w, h), maps = ("resnet18", (128, 64), 8) if args.quick else ("se_resnext50_32x4d", (512, 256), None)
    model = _model(encoder)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "model": f"FPN/{encoder} (seeded random weights)",
        "input": [w, h],
        "maps": maps or "all",
        "numerics": numerics(device),
        "scorecam": scorecam(model, x, device, ["decoder", "encoder.layer4"], [32], maps),
        "out_of_memory": out_of_memory(model.to(device), x.to(device), device, "decoder", maps),
        "compile": compiled(model.to(device), x, device, "decoder", maps, 4),
        "evaluation": evaluation(model, x, device, 4 if args.quick else 50),
        "pipeline": pipeline(4 if args.quick else 48),
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
